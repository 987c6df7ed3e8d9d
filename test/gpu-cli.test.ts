// `bun run load` on a real GPU, as a user runs it: the JSON document against
// cudaMemGetInfo and nvidia-smi, --hold released by Enter and by Ctrl-C.

import { beforeAll, expect, test } from "bun:test";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { describeGpu } from "./support/gpu.ts";

const cli = new URL("../src/cli/load.ts", import.meta.url).pathname;
let model = "";

describeGpu("bun run load on the GPU", () => {
  beforeAll(async () => {
    model = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m");
  });

  test("--yes --json --verify: the ledger, cudaMemGetInfo and nvidia-smi agree", () => {
    const p = Bun.spawnSync([process.execPath, cli, "--yes", "--json", "--verify", "--model", model]);
    expect(p.exitCode).toBe(0);
    const doc = JSON.parse(p.stdout.toString());
    expect(doc.verified).toBe(true);
    expect(doc.ledger.dataBytes).toBe(485_452_288);
    expect(doc.vram.cudaMemGetInfoDropBytes).toBeGreaterThanOrEqual(doc.ledger.totalBytes);
    expect(doc.vram.cudaMemGetInfoDropBytes - doc.ledger.totalBytes).toBeLessThanOrEqual(64 * 1024 * 1024);
    if (doc.vram.nvidiaSmiBytes !== null) expect(doc.vram.nvidiaSmiBytes).toBeGreaterThan(doc.ledger.totalBytes);
    expect(doc.timings.upload).toBeGreaterThan(0);
  });

  test("--hold: Enter frees the model; exit code 0", async () => {
    const p = Bun.spawn([process.execPath, cli, "--hold", "--model", model], { stdin: "pipe", stderr: "pipe", stdout: "pipe" });
    const err = await waitForText(p.stderr, "press Enter");
    expect(err).toContain("holding");
    p.stdin.write("\n");
    await p.stdin.end();
    expect(await p.exited).toBe(0);
  });

  test("Ctrl-C during the upload: exit code 130, the tool's own line", async () => {
    const p = Bun.spawn([process.execPath, cli, "--yes", "--debug", "--workers", "0", "--model", model], { stdin: "pipe", stderr: "pipe", stdout: "pipe" });
    const err = await waitForText(p.stderr, "[debug] upload");
    p.kill("SIGINT");
    expect(await p.exited).toBe(130);
    expect(err + (await waitForText(p.stderr, "\u0000"))).toContain("cancelled: nothing was kept");
  });

  test("--hold: Ctrl-C frees the model; exit code 130", async () => {
    const p = Bun.spawn([process.execPath, cli, "--hold", "--model", model], { stdin: "pipe", stderr: "pipe", stdout: "pipe" });
    await waitForText(p.stderr, "press Enter");
    p.kill("SIGINT");
    expect(await p.exited).toBe(130);
  });
});

/** Reads `stream` until `text` has been seen (or to its end), and returns what it read. */
async function waitForText(stream: ReadableStream<Uint8Array>, text: string): Promise<string> {
  let seen = "";
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  while (!seen.includes(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += decoder.decode(value);
  }
  reader.releaseLock();
  return seen;
}
