// examples/attach.cu, the C client's example, built with the real nvcc against
// libgguf_vram_client (ensureExample): its usage, and on a machine without a
// GPU its one-line failure. What it checks on a GPU (every tensor's checksum in
// VRAM against the file) needs a server with a model: the GPU suites run it.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { ensureExample } from "../build.ts";
import { gpu } from "./support/gpu.ts";
import { StandInServer } from "./support/stand-in-server.ts";
import { tempDirs } from "./support/temp.ts";

setDefaultTimeout(60_000);
const tempDir = tempDirs();
const example = await ensureExample({ quiet: true });

async function run(args: string[]) {
  const child = Bun.spawn([example, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { out, err, code };
}

describe("examples/attach.cu", () => {
  test("built into the cache once: a second ensureExample finds the same program", async () => {
    expect(example).toMatch(/\/attach-[0-9a-f]{16}$/);
    expect(await ensureExample({ quiet: true })).toBe(example);
  });

  test("usage: no model, --json without --repeat, an unknown flag: exit 2 with the usage", async () => {
    for (const args of [[], ["m1", "--json"], ["m1", "--repeat", "3"], ["m1", "--bogus"], ["m1", "m2"]]) {
      const result = await run(args);
      expect([result.code, result.out]).toEqual([2, ""]);
      expect(result.err).toStartWith("usage: attach <model path or id> [--socket PATH]\n");
    }
  });

  test.skipIf(gpu.available)("without a GPU: one line saying the CUDA contexts could not be made, exit 1, before any request", async () => {
    const standIn = new StandInServer(join(tempDir("gguf-vram-example-"), "serve.sock"));
    try {
      for (const args of [["m1"], ["m1", "--repeat", "3", "--json"]]) {
        const result = await run([...args, "--socket", standIn.pumped.path]);
        expect(result.code).toBe(1);
        expect(result.out).toBe("");
        expect(result.err).toMatch(/^attach: creating the CUDA contexts failed: .+ \(cudaError\w+\)\n$/);
      }
      expect(standIn.received).toEqual([]);
    } finally {
      await standIn.close();
    }
  });
});
