// The commands as real processes, the way a user's shell runs them: big
// documents through a slow pipe arrive whole, Ctrl-C (SIGINT) exits 130 with
// the tool's own line and leaves nothing half-written, a usage error or a
// missing GPU is one line, and `bun run` adds no line of its own.

import { beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { tempDirs } from "./support/temp.ts";
import { wideSparseModel } from "./support/wide-model.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const bun = process.execPath;
const tempDir = tempDirs();
const NO_GPU = { ...process.env, CUDA_VISIBLE_DEVICES: "", NO_COLOR: "1" };

/** Runs `command` (a shell line) with its stdout read by a reader that starts late, as `… | jq` can. */
function throughSlowPipe(command: string, env: Record<string, string | undefined> = NO_GPU) {
  const p = Bun.spawnSync(["sh", "-c", `${command} | (sleep 0.5; cat)`], { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" });
  return { out: p.stdout.toString(), err: p.stderr.toString() };
}

/** The command lines of the running processes that name `path`. */
function processesNaming(path: string): string[] {
  const lines = readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
    } catch {
      return ""; // ended while we looked
    }
  });
  return lines.filter((line) => line.includes(path));
}

/** Starts `argv`, waits until its stderr shows `text`, sends SIGINT, and returns the exit code and output. */
async function interrupt(argv: string[], text: string, env: Record<string, string | undefined>, cwd = ROOT) {
  const child = Bun.spawn(argv, { cwd, env, stdout: "pipe", stderr: "pipe" });
  let err = "";
  const reader = (async () => {
    for await (const chunk of child.stderr) err += new TextDecoder().decode(chunk);
  })();
  const t0 = performance.now();
  while (!err.includes(text)) {
    if (performance.now() - t0 > 60_000 || child.exitCode !== null) throw new Error(`never saw ${JSON.stringify(text)}; stderr: ${err}`);
    await Bun.sleep(10);
  }
  child.kill("SIGINT");
  const code = await child.exited;
  await reader;
  return { code, err, out: await new Response(child.stdout).text() };
}

let wide = "";
let wideTensors = 0;
let qwenSparse = "";
beforeAll(async () => {
  const dir = tempDir("gguf-vram-proc-");
  ({ path: wide, tensors: wideTensors } = await wideSparseModel(dir));
  qwenSparse = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m", { sparse: true });
});

describe("output through a pipe arrives whole", () => {
  test("load --dry-run --json of a model with 8,195 tensors (> 1 MB)", () => {
    const { out } = throughSlowPipe(`${bun} src/cli/load.ts --dry-run --json --model ${wide}`);
    expect(out.length).toBeGreaterThan(1_000_000);
    const doc = JSON.parse(out) as { plan: { tensors: unknown[] } };
    expect(doc.plan.tensors.length).toBe(wideTensors + 1); // and the tied head's alias
  });

  test("inspect --full of the Qwen2.5 header: every token (> 1 MB of text)", () => {
    const { out } = throughSlowPipe(`${bun} src/cli/inspect.ts --full ${qwenSparse}`);
    expect(out.length).toBeGreaterThan(1_000_000);
    expect(out.trimEnd().split("\n").at(-1)).toContain("every expected tensor is present");
  });

  test("inspect --json and fuzz --json parse whole", () => {
    const inspect = throughSlowPipe(`${bun} src/cli/inspect.ts --json ${wide}`);
    expect(inspect.out.length).toBeGreaterThan(500_000);
    expect((JSON.parse(inspect.out) as { tensors: unknown[] }).tensors.length).toBe(wideTensors);
    const fuzz = throughSlowPipe(`${bun} src/cli/fuzz.ts --cases 300 --model-cases 10 --json`);
    expect((JSON.parse(fuzz.out) as { cases: number }).cases).toBe(300);
  });
});

describe("Ctrl-C", () => {
  test("while the default model is being written: exit 130, the tool's line, no partial file", async () => {
    const dir = tempDir("gguf-vram-sigint-");
    const r = await interrupt([bun, "src/cli/load.ts", "--yes"], "creating", { ...NO_GPU, GGUF_VRAM_FIXTURES: dir });
    expect(r.code).toBe(130);
    expect(r.err).toContain("cancelled: writing the model was stopped; the partial file was removed");
    expect(readdirSync(dir).filter((f) => f.includes(".filling") || f.includes(".partial") || f.endsWith(".gguf"))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  test("during the first build of the native library: exit 130, no objects, partial library or nvcc temporary files left", async () => {
    const copy = tempDir("gguf-vram-build-");
    cpSync(join(ROOT, "build.ts"), join(copy, "build.ts"));
    cpSync(join(ROOT, "src", "build"), join(copy, "src", "build"), { recursive: true });
    cpSync(join(ROOT, "cuda"), join(copy, "cuda"), { recursive: true });
    const cache = join(copy, "cache");
    const userTmp = mkdtempSync(join(copy, "tmp-"));
    const child = Bun.spawn([bun, "build.ts"], { cwd: copy, env: { ...process.env, GGUF_VRAM_CACHE_DIR: cache, TMPDIR: userTmp }, stdout: "pipe", stderr: "pipe" });
    let out = "";
    for await (const chunk of child.stdout) {
      out += new TextDecoder().decode(chunk);
      if (out.includes("building")) break;
    }
    await Bun.sleep(1000); // nvcc is running, with its temporary files in the build folder
    const building = readdirSync(cache).find((f) => f.startsWith(".build-"))!;
    expect(readdirSync(join(cache, building, "tmp")).some((f) => f.startsWith("tmpxft_"))).toBe(true);
    child.kill("SIGINT");
    expect(await child.exited).toBe(130);
    expect(await new Response(child.stderr).text()).toContain("cancelled");
    expect(readdirSync(cache)).toEqual(["nvcc-version.json"]);
    expect(readdirSync(userTmp)).toEqual([]);
    expect(processesNaming(cache)).toEqual([]); // nvcc, cicc, ptxas, the host compiler: all stopped
    rmSync(copy, { recursive: true, force: true });
  }, 60_000);
});

describe("nothing left behind", () => {
  test("bun test of the suites that make temporary folders leaves none under $TMPDIR", () => {
    const suites = ["plan", "split", "unchecked", "checksum", "cli-inspect", "real-shapes"].map((name) => `test/${name}.test.ts`);
    const tmp = tempDir("gguf-vram-tmpdir-");
    const p = Bun.spawnSync([bun, "test", ...suites], { cwd: ROOT, env: { ...process.env, TMPDIR: tmp }, stdout: "pipe", stderr: "pipe" });
    expect(p.stderr.toString()).toMatch(/Ran [1-9]\d* tests across 6 files/);
    expect(readdirSync(tmp)).toEqual([]);
  }, 240_000);
});

describe("one line", () => {
  test("bun run load with a missing file: one line on stderr (bun adds none), exit 1", () => {
    const p = Bun.spawnSync([bun, "run", "load", "--model", "missing.gguf"], { cwd: ROOT, env: NO_GPU });
    expect(p.exitCode).toBe(1);
    const lines = p.stderr.toString().split("\n").filter(Boolean);
    expect(lines).toEqual(["error: missing.gguf: no such file — check the path; `bun run load` with no arguments lists the models it finds"]);
  });

  test("bun run bench without a GPU: the same one line as load, exit 3", () => {
    const p = Bun.spawnSync([bun, "bench/load.ts"], { cwd: ROOT, env: NO_GPU });
    expect(p.exitCode).toBe(3);
    const lines = p.stderr.toString().split("\n").filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith("error: no CUDA device: ");
    expect(lines[0]).not.toContain("gv_");
  });

  test("usage errors: bench, fuzz, build", () => {
    for (const [argv, code, says] of [
      [["bench/load.ts", "--reps=x"], 2, "--reps must be a number of repetitions"],
      [["src/cli/fuzz.ts", "--cases="], 2, "--cases must be a number of cases"],
      [["build.ts", "--bogus"], 2, "unknown option --bogus (see bun run build --help)"],
    ] as const) {
      const p = Bun.spawnSync([bun, ...argv], { cwd: ROOT, env: NO_GPU });
      expect([argv.join(" "), p.exitCode]).toEqual([argv.join(" "), code]);
      const lines = p.stderr.toString().split("\n").filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(says);
    }
  });
});
