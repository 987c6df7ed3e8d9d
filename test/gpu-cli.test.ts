// `bun run load` on a real GPU, as a user runs it: the JSON document against
// cudaMemGetInfo and nvidia-smi, --hold released by Enter and by Ctrl-C, and
// Ctrl-C pressed in a real terminal during the upload's progress bar and the
// verify.

import { beforeAll, expect, test } from "bun:test";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { describeGpu, describeGpus } from "./support/gpu.ts";
import { KEY, Pty } from "./support/pty.ts";

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

  test("Ctrl-C pressed at the interactive upload's progress bar (a real terminal): exit 130, the tool's line, nothing held", async () => {
    const big = await uncachedBigModel();
    const term = new Pty([process.execPath, cli, big], { env: terminalEnv() });
    await term.waitFor("Which GPU?", 120_000);
    term.press(KEY.enter);
    await term.waitFor("Load ");
    term.press(KEY.enter);
    await term.waitFor("Uploading");
    term.press(KEY.ctrlC);
    expect(await term.exit()).toBe(130);
    expect(term.screen).not.toContain("Uploaded "); // the key came during the upload, not after it
    expect(term.flat).toContain("The upload was stopped");
    expect(term.flat).toContain("cancelled: nothing was kept");
    expect(term.screen).not.toContain("stays in VRAM");
  }, 600_000);

  test("Ctrl-C pressed during --verify (a real terminal): exit 130, the model freed, no summary", async () => {
    const big = await uncachedBigModel();
    const term = new Pty([process.execPath, cli, "--yes", "--verify", "--debug", "--workers", "0", "--model", big], { env: terminalEnv() });
    await term.waitFor("[debug] verify", 300_000);
    term.press(KEY.ctrlC);
    expect(await term.exit(300_000)).toBe(130);
    const after = term.screen.slice(term.screen.indexOf("[debug] verify"));
    expect(after).toContain("cancelled: "); // after the terminal's own echo of the key (^C)
    expect(after).not.toContain("verified");
    expect(after).not.toContain("the ledger");
  }, 600_000);

  test("--hold: Ctrl-C frees the model; exit code 130", async () => {
    const p = Bun.spawn([process.execPath, cli, "--hold", "--model", model], { stdin: "pipe", stderr: "pipe", stdout: "pipe" });
    await waitForText(p.stderr, "press Enter");
    p.kill("SIGINT");
    expect(await p.exited).toBe(130);
  });
});

describeGpus(2, "bun run load on two GPUs", () => {
  beforeAll(async () => {
    model = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m");
  });

  const run = (...flags: string[]) => {
    const p = Bun.spawnSync([process.execPath, cli, "--yes", "--json", "--verify", "--model", model, ...flags]);
    expect([p.exitCode, p.stderr.toString()]).toEqual([0, ""]);
    return JSON.parse(p.stdout.toString());
  };

  test("--devices 0,1 --split 3,1 --verify --json: llama.cpp's layers, each GPU's ledger against its cudaMemGetInfo", () => {
    const doc = run("--devices", "0,1", "--split", "3,1");
    expect(doc.verified).toBe(true);
    expect(doc.plan.kind).toBe("split");
    expect(doc.plan.devices.map((d: { device: number; layers: number[] }) => [d.device, d.layers])).toEqual([[0, [0, 18]], [1, [19, 23]]]);
    expect(doc.plan.devices.reduce((n: number, d: { tensors: number }) => n + d.tensors, 0)).toBe(291);
    expect(doc.ledger.dataBytes).toBe(485_452_288);
    for (const v of doc.vram.devices) {
      expect(v.cudaMemGetInfoDropBytes).toBeGreaterThanOrEqual(v.ledgerBytes);
      expect(v.cudaMemGetInfoDropBytes - v.ledgerBytes).toBeLessThanOrEqual(64 * 1024 * 1024);
    }
  });

  test("--replicas 0,1 --verify --json: a whole copy on each GPU, and the route taken", () => {
    const doc = run("--replicas", "0,1");
    expect(doc.verified).toBe(true);
    expect([doc.plan.kind, ["peer", "host"].includes(doc.route)]).toEqual(["replicas", true]);
    expect(doc.plan.devices.map((d: { tensors: number }) => d.tensors)).toEqual([291, 291]);
    expect(doc.vram.devices.map((v: { ledgerBytes: number }) => v.ledgerBytes)).toEqual([doc.plan.devices[0].arenaBytes, doc.plan.devices[1].arenaBytes]);
  });
});

/** A terminal session's environment: not CI (nothing would prompt), colours as a terminal has them. */
function terminalEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env, TERM: "xterm-256color" };
  delete env.CI;
  return env;
}

/**
 * Qwen2.5-7B (4.68 GB), its pages dropped from the page cache (GNU dd's
 * nocache), so its upload reads the disk and lasts long enough for a key
 * pressed when the progress bar appears to land during it.
 */
async function uncachedBigModel(): Promise<string> {
  const path = await ensureModelFixture("qwen2.5-7b-instruct-q4_k_m");
  Bun.spawnSync(["sync", path]);
  Bun.spawnSync(["dd", `if=${path}`, "iflag=nocache", "count=0", "status=none"]);
  return path;
}

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
