// `bun run load`: the prompts driven through streams, every flag, the dry run,
// the JSON document, exit codes. A stand-in GPU (support/fake-gpu.ts) plays the
// device here; test/gpu-cli.test.ts runs the same command on a real one.

import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { inCI, loadCommand } from "../src/cli/load.ts";
import { runInteractive } from "../src/cli/load-interactive.ts";
import { describeError } from "../src/cli/main.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { LoadJsonSchema } from "./cli-load-json.ts";
import { FakeGpu, fakeDevice } from "./support/fake-gpu.ts";
import { tempDirs } from "./support/temp.ts";
import { KEY, Terminal } from "./support/terminal.ts";

const GiB = 1024 ** 3;
const tempDir = tempDirs();
let dir = "";
let tiny = "";
let llama = "";

beforeAll(async () => {
  dir = tempDir("gguf-vram-cli-");
  mkdirSync(join(dir, "models"));
  tiny = join(dir, "models", "tiny-qwen2-q4_k_m.gguf");
  llama = join(dir, "models", "tiny-llama-mixed.gguf");
  copyFileSync(await ensureModelFixture("tiny-qwen2-q4_k_m"), tiny);
  copyFileSync(await ensureModelFixture("tiny-llama-mixed"), llama);
  await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m"); // the default model
});

// ─── interactive ──────────────────────────────────────────────────────────────

function interactive(gpu: FakeGpu, places = [{ dir: join(dir, "models"), label: "./models" }], paths: string[] = []) {
  const term = new Terminal();
  const controller = new AbortController();
  const done = runInteractive(paths, gpu, { input: term.input, output: term.output, signal: controller.signal, places });
  return { term, controller, done };
}

/** The first model, the first GPU, up to the "Load …?" question. */
async function toConfirmation(term: Terminal) {
  await term.waitFor("Which model?");
  term.press(KEY.enter);
  await term.waitFor("Which GPU?");
  term.press(KEY.enter);
  await term.waitFor("Load ");
}

describe("interactive", () => {
  test("choose a model and a GPU, see the plan, upload, hold until Enter, free", async () => {
    const gpu = new FakeGpu([fakeDevice(0, "Fake H100 80GB", 80 * GiB), fakeDevice(1, "Fake L4 24GB", 24 * GiB)]);
    const { term, done } = interactive(gpu);
    await term.waitFor("Which model?");
    expect(term.screen).toContain("tiny-llama-mixed.gguf");
    expect(term.flat).toMatch(/llama · Q8_0 · 29 tensors/);
    term.press(KEY.down, KEY.enter); // the second model: tiny-qwen2 (sorted by name)
    await term.waitFor("Which GPU?");
    expect(term.screen).toContain("GPU 1: Fake L4 24GB");
    expect(term.flat).toMatch(/free of 80\.00 GiB · fits/);
    term.press(KEY.down, KEY.enter);
    await term.waitFor("Load ");
    expect(term.screen).toContain("VRAM needed");
    expect(term.screen).toContain("Q4_K");
    term.press(KEY.enter); // Yes
    await term.waitFor("press Enter");
    expect(term.screen).toContain("tensors in VRAM on GPU 1");
    expect(term.screen).toContain("the ledger");
    expect(term.screen).toContain("cudaMemGetInfo");
    expect(gpu.open).toBe(1);
    term.press(KEY.enter);
    expect(await done).toBe(0);
    expect(term.screen).toContain("freed");
    expect(gpu.open).toBe(0);
    expect(gpu.loads).toHaveLength(1);
    expect(gpu.loads[0]!.path).toBe(tiny);
    expect(gpu.loads[0]!.options.device).toBe(1);
  });

  test("Ctrl-C at a prompt cancels with exit code 130 and loads nothing", async () => {
    const gpu = new FakeGpu();
    const { term, done } = interactive(gpu);
    await term.waitFor("Which model?");
    term.press(KEY.ctrlC);
    expect(await done).toBe(130);
    expect(term.screen).toContain("cancelled");
    expect(gpu.loads).toHaveLength(0);
  });

  test("answering No to the plan loads nothing", async () => {
    const gpu = new FakeGpu();
    const { term, done } = interactive(gpu);
    await toConfirmation(term);
    term.press(KEY.right, KEY.enter); // No
    expect(await done).toBe(0);
    expect(term.screen).toContain("nothing was loaded");
    expect(gpu.loads).toHaveLength(0);
  });

  test("Ctrl-C while the model is held frees it, exit code 130", async () => {
    const gpu = new FakeGpu();
    const { term, controller, done } = interactive(gpu);
    await toConfirmation(term);
    term.press(KEY.enter);
    await term.waitFor("press Enter");
    expect(gpu.open).toBe(1);
    controller.abort();
    expect(await done).toBe(130);
    expect(gpu.open).toBe(0);
  });

  test("with no model found it offers the synthetic one", async () => {
    const empty = tempDir("gguf-vram-empty-");
    const gpu = new FakeGpu();
    const { term, done } = interactive(gpu, [{ dir: empty, label: "." }]);
    await term.waitFor("No GGUF model found");
    await term.waitFor("random weights, about 491 MB");
    term.press(KEY.enter); // Yes, create it
    await term.waitFor("Which GPU?");
    term.press(KEY.ctrlC);
    expect(await done).toBe(130);
    // It was there already (the tests' fixtures folder is not among these places): reused, not written.
    expect(term.flat).toMatch(/Using \S*qwen2\.5-0\.5b-instruct-q4_k_m\.gguf/);
    expect(term.screen).not.toContain("Wrote");
  });

  test("two model paths are the same usage error (exit 2) as without prompts", async () => {
    const term = new Terminal();
    const gpu = new FakeGpu();
    const e = await loadCommand([tiny, llama], { stdin: term.input, stdout: new PassThrough(), stderr: new PassThrough(), terminal: term.output, interactive: true, gpu, signal: new AbortController().signal }).catch((err: unknown) => err);
    expect(describeError(e, false, "bun run load")).toEqual({ line: "error: give one model: a path, or --model (see bun run load --help)", exitCode: 2 });
    expect(gpu.loads).toHaveLength(0);
  });

  test("a path on the command line is the model: no \"Which model?\"", async () => {
    const gpu = new FakeGpu();
    const { term, done } = interactive(gpu, [], [llama]);
    await term.waitFor("Which GPU?");
    expect(term.screen).not.toContain("Which model?");
    term.press(KEY.enter);
    await term.waitFor("Load ");
    term.press(KEY.right, KEY.enter); // No
    expect(await done).toBe(0);
    expect(term.screen).toContain("tiny-llama-mixed.gguf");
  });

  test("a path that does not exist is said so, exit code 1", async () => {
    const gpu = new FakeGpu();
    const { term, done } = interactive(gpu, [], [join(dir, "missing.gguf")]);
    expect(await done).toBe(1);
    expect(term.screen).toContain("missing.gguf does not exist");
    expect(term.screen).not.toContain("Which model?");
    expect(gpu.loads).toHaveLength(0);
  });

  test("no model found: it says where it looked and how to add one; No to the synthetic model is a choice (exit 0)", async () => {
    const empty = tempDir("gguf-vram-none-");
    const gpu = new FakeGpu();
    const { term, done } = interactive(gpu, [{ dir: empty, label: "./models" }, { dir: empty, label: "~/.cache/llama.cpp" }]);
    await term.waitFor("random weights, about 491 MB");
    expect(term.flat).toContain("No GGUF model found in ./models, ~/.cache/llama.cpp");
    expect(term.flat).toContain("put its .gguf file in ./models, or give its path: bun run load path/to/model.gguf");
    term.press(KEY.right, KEY.enter); // No
    expect(await done).toBe(0);
    expect(term.screen).toContain("nothing was loaded");
    expect(term.screen).not.toContain("cancelled");
  });

  test("the first-run build shows a spinner, and Ctrl-C during it exits 130", async () => {
    const gpu = new FakeGpu();
    gpu.buildMs = 60_000;
    const { term, controller, done } = interactive(gpu);
    await term.waitFor("Which model?");
    term.press(KEY.enter);
    await term.waitFor("Building the CUDA library for sm_90 (first run only");
    controller.abort();
    expect(await done).toBe(130);
    expect(term.screen).toContain("cancelled");
    expect(gpu.loads).toHaveLength(0);
  });

  test("without a GPU it says so and shows the dry-run plan, exit code 3", async () => {
    const gpu = new FakeGpu([]);
    const { term, done } = interactive(gpu);
    await term.waitFor("Which model?");
    term.press(KEY.enter);
    expect(await done).toBe(3);
    expect(term.screen).toContain("no CUDA device");
    expect(term.screen).toContain("what the load would do (dry run)");
    expect(term.screen).toContain("VRAM needed");
  });

  test("a load error is one sentence and a hint, and nothing is held", async () => {
    const { LoadError } = await import("../src/load/index.ts");
    const gpu = new FakeGpu(undefined, new LoadError("OUT_OF_VRAM", "the model needs 463.0 MiB of VRAM; device 0 has 100.0 MiB free of 81559.0 MiB", "free GPU memory"));
    const { term, done } = interactive(gpu);
    await toConfirmation(term);
    term.press(KEY.enter);
    expect(await done).toBe(4);
    expect(term.screen).toContain("the model needs 463.0 MiB of VRAM");
    expect(term.screen).toContain("free GPU memory");
  });
});

// ─── flags ────────────────────────────────────────────────────────────────────

async function run(argv: string[], gpu = new FakeGpu(), stdinText?: string) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => (out += c.toString()));
  stderr.on("data", (c: Buffer) => (err += c.toString()));
  if (stdinText !== undefined) setTimeout(() => stdin.write(stdinText), 20);
  let code: number;
  try {
    code = await loadCommand(argv, { stdin, stdout, stderr, interactive: false, gpu, signal: new AbortController().signal });
  } catch (e) {
    const d = describeError(e, false, "bun run load");
    err += d.line;
    code = d.exitCode;
  }
  return { code, out, err, gpu };
}


describe("flags (never prompts)", () => {
  test("no flags and no terminal: loads the default model", async () => {
    const r = await run([]);
    expect(r.code).toBe(0);
    expect(r.err).toContain("no --model given");
    expect(r.gpu.loads[0]!.path).toEndWith("qwen2.5-0.5b-instruct-q4_k_m.gguf");
    expect(r.out).toContain("291 tensors in VRAM on GPU 0");
    expect(r.gpu.open).toBe(0);
  });

  test("--model, --device, --verify, --workers, --yes, --debug", async () => {
    const gpu = new FakeGpu([fakeDevice(0, "A", 80 * GiB), fakeDevice(1, "B", 80 * GiB)]);
    const r = await run(["--model", tiny, "--device", "1", "--verify", "--workers=3", "--yes", "--debug"], gpu);
    expect(r.code).toBe(0);
    expect(gpu.loads[0]).toMatchObject({ path: tiny, options: { device: 1, verify: true, workers: 3 } });
    expect(r.out).toContain("verified");
  });

  test("a path as argument works like --model; two models are a usage error", async () => {
    expect((await run([llama, "--yes"])).gpu.loads[0]!.path).toBe(llama);
    expect((await run([llama, tiny, "--yes"])).code).toBe(2);
    expect((await run([llama, "--model", tiny])).code).toBe(2);
  });

  test("--dry-run plans without touching the GPU, with or without one", async () => {
    for (const gpu of [new FakeGpu(), new FakeGpu([])]) {
      const r = await run(["--dry-run", "--model", tiny], gpu);
      expect(r.code).toBe(0);
      expect(gpu.loads).toHaveLength(0);
      expect(r.out).toContain("VRAM needed");
    }
  });

  test("--json prints exactly one document of the documented shape", async () => {
    const r = await run(["--json", "--model", llama]);
    const doc = LoadJsonSchema.parse(JSON.parse(r.out));
    expect(doc.dryRun).toBe(false);
    expect(doc.model.tiedHead).toBe(true);
    expect(doc.plan.tensors.find((t) => t.name === "output.weight")?.aliasOf).toBe("token_embd.weight");
    expect(doc.ledger!.totalBytes).toBe(doc.plan.arenaBytes);
    expect(doc.vram!.cudaMemGetInfoDropBytes).toBe(doc.plan.arenaBytes);
    const dry = LoadJsonSchema.parse(JSON.parse((await run(["--json", "--dry-run", "--model", tiny])).out));
    expect(dry).toMatchObject({ dryRun: true, ledger: null, timings: null, vram: null });
  });

  test("--hold keeps the model until Enter", async () => {
    const r = await run(["--hold", "--model", tiny], new FakeGpu(), "\n");
    expect(r.code).toBe(0);
    expect(r.err).toContain("press Enter to free it");
    expect(r.gpu.open).toBe(0);
  });

  test("no GPU: says so, shows the dry-run plan, exit code 3 (and in JSON, an error field)", async () => {
    const r = await run(["--model", tiny], new FakeGpu([]));
    expect(r.code).toBe(3);
    expect(r.err).toContain("no CUDA device");
    expect(r.out).toContain("VRAM needed");
    const j = await run(["--json", "--model", tiny], new FakeGpu([]));
    expect(j.code).toBe(3);
    expect(LoadJsonSchema.parse(JSON.parse(j.out)).error?.code).toBe("NO_CUDA_DEVICE");
  });

  test("usage errors: exit code 2 and one line naming the flag and what it takes", async () => {
    const cases: [string[], string][] = [
      [["--device", "x"], `--device must be a GPU index: a whole number from 0 to 1023 (got "x") (see bun run load --help)`],
      [["--device=-1"], `--device must be a GPU index`],
      [["--device="], `--device must be a GPU index: a whole number from 0 to 1023 (got "")`],
      [["--workers="], `--workers must be a number of upload threads (0: the main thread): a whole number from 0 to 256 (got "")`],
      [["--workers", "9999"], `--workers must be a number of upload threads`],
      [["--workers", "1.5"], `--workers must be a number of upload threads`],
      [["--json=yes"], `--json takes no value (or =true, =false) (got "yes")`],
      [["--bogus"], "unknown option --bogus"],
      [["--model"], "--model needs a value"],
    ];
    for (const [argv, says] of cases) {
      const r = await run(argv);
      expect([argv.join(" "), r.code]).toEqual([argv.join(" "), 2]);
      const lines = r.err.split("\n").filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(says);
      expect(lines[0]).not.toMatch(/Invalid input|expected number|received NaN|usage:/);
    }
    const bad = await run(["--device", "7", "--model", tiny]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("device 7 does not exist");
  });

  test("load errors: one sentence and a hint, no stack, their exit codes", async () => {
    const missing = await run(["--model", join(dir, "nope.gguf")]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("no such file");
    expect(missing.err).not.toContain("    at ");
    const { LoadError } = await import("../src/load/index.ts");
    const oom = await run(["--model", tiny], new FakeGpu(undefined, new LoadError("OUT_OF_VRAM", "needs more", "free some")));
    expect(oom.code).toBe(4);
  });

  test("the first-run build is announced on stderr; Ctrl-C during it is exit 130", async () => {
    const gpu = new FakeGpu();
    gpu.buildMs = 20;
    const r = await run(["--model", tiny], gpu);
    expect(r.code).toBe(0);
    expect(r.err).toContain("building the CUDA library for sm_90 (first run only, about 10 s)…");
    gpu.buildMs = 60_000;
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    const code = await loadCommand(["--model", tiny], { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), interactive: false, gpu, signal: controller.signal }).catch((e: unknown) => describeError(e).exitCode);
    expect(code).toBe(130);
    expect(gpu.loads).toHaveLength(1); // only the first run's
  });

  test("--help", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("--dry-run");
    expect(r.out).toContain("exit codes");
  });
});

test("CI: $CI set to anything but empty, 0 or false (any case) — then nothing prompts", () => {
  for (const value of [undefined, "", "0", "false", "False", " FALSE "]) expect([value, inCI({ CI: value })]).toEqual([value, false]);
  for (const value of ["1", "true", "yes", "woodpecker"]) expect([value, inCI({ CI: value })]).toEqual([value, true]);
});

test("the real command with no GPU visible: exit code 3, the dry-run plan on stdout", async () => {
  const p = Bun.spawnSync([process.execPath, new URL("../src/cli/load.ts", import.meta.url).pathname, "--yes", "--model", tiny], { env: { ...process.env, CUDA_VISIBLE_DEVICES: "" } });
  expect(p.exitCode).toBe(3);
  expect(p.stderr.toString()).toContain("no CUDA device");
  expect(p.stdout.toString()).toContain("VRAM needed");
});
