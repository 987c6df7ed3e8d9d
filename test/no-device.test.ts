// The "no CUDA device" path, for real: on a machine without a GPU (CI), and on
// a GPU machine with every device hidden (CUDA_VISIBLE_DEVICES=).

import { expect, test } from "bun:test";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { load, LoadError } from "../src/load/index.ts";
import { gpu } from "./support/gpu.ts";

const child = new URL("./support/load-child.ts", import.meta.url).pathname;

test("with every GPU hidden, a load fails with NO_CUDA_DEVICE (exit code 3) and holds nothing", async () => {
  const path = await ensureModelFixture("tiny-qwen2-q4_k_m");
  const p = Bun.spawnSync([process.execPath, child, path], { env: { ...process.env, CUDA_VISIBLE_DEVICES: "" } });
  const out = JSON.parse(p.stdout.toString().trim().split("\n").pop()!);
  expect(out).toMatchObject({ ok: false, code: "NO_CUDA_DEVICE", exitCode: 3 });
  expect(out.message).toStartWith("no CUDA device:");
  expect(out.hint).toContain("--dry-run");
  expect(out.live).toEqual({ arenas: 0, arenaBytes: 0, pinnedRanges: 0, pinnedBytes: 0, stagers: 0, copies: 0 });
});

test.skipIf(gpu.available)("on this machine (no GPU), load() rejects with NO_CUDA_DEVICE", async () => {
  const path = await ensureModelFixture("tiny-llama-mixed");
  const error = await load(path).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(LoadError);
  expect((error as LoadError).code).toBe("NO_CUDA_DEVICE");
  expect((error as LoadError).message).toStartWith("no CUDA device: ");
  expect((error as LoadError).message).toContain("driver");
  expect((error as LoadError).message).toBe(gpu.reason);
  // The library's own words stay in `cause`, for --debug.
  expect(((error as LoadError).cause as Error).message).toMatch(/cudaError\w+, \d+\) at cuda\/\w+\.cu:\d+/);
});

test("file errors come before any GPU work, with or without a GPU", async () => {
  await expect(load("/nonexistent/model.gguf")).rejects.toMatchObject({ code: "FILE_NOT_FOUND", exitCode: 1 });
  await expect(load(import.meta.dir)).rejects.toMatchObject({ code: "IS_A_DIRECTORY" });
  await expect(load(new URL("../package.json", import.meta.url).pathname)).rejects.toMatchObject({ code: "NOT_GGUF" });
});
