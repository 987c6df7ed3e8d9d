// Ctrl-C while `bun run load` is busy, driven in-process with a stand-in GPU:
// the spinner and progress bar read the keys themselves (a terminal in raw mode
// sends no SIGINT), so Ctrl-C there must reach the command's cancel; and a
// Ctrl-C that lands while a load finishes (a verify cannot stop half-way)
// still cancels, freeing the model. test/cli-terminal.test.ts presses the same
// keys in a real pseudo-terminal; test/gpu-cli.test.ts on a real GPU.

import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { progressBar, spinner } from "../src/cli/activity.ts";
import { runInteractive } from "../src/cli/load-interactive.ts";
import { loadCommand } from "../src/cli/load.ts";
import { describeError } from "../src/cli/main.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { LoadError, type LoadOptions, type ModelFile } from "../src/load/index.ts";
import { FakeGpu } from "./support/fake-gpu.ts";
import { tempDirs } from "./support/temp.ts";
import { KEY, Terminal } from "./support/terminal.ts";

const tempDir = tempDirs();
let models = "";
let tiny = "";

beforeAll(async () => {
  models = join(tempDir("gguf-vram-cancel-"), "models");
  mkdirSync(models);
  tiny = join(models, "tiny-qwen2-q4_k_m.gguf");
  copyFileSync(await ensureModelFixture("tiny-qwen2-q4_k_m"), tiny);
});

/** An input that says it is a terminal, and records the raw modes it is put in. */
function ttyInput() {
  const input = new PassThrough() as PassThrough & { isTTY: boolean; isRaw: boolean; modes: boolean[]; setRawMode(raw: boolean): unknown };
  Object.assign(input, { isTTY: true, isRaw: false, modes: [] });
  input.setRawMode = (raw: boolean) => {
    input.modes.push(raw);
    input.isRaw = raw;
    return input;
  };
  return input;
}

/** The interactive load, with Ctrl-C at a spinner or the bar doing what SIGINT does: abort. */
function interactive(gpu: FakeGpu, controller = new AbortController()) {
  const term = new Terminal();
  const done = runInteractive([], gpu, { input: term.input, output: term.output, signal: controller.signal, interrupt: () => controller.abort(), places: [{ dir: models, label: "./models" }] });
  return { term, done, controller };
}

/** A stand-in GPU on which Ctrl-C comes just as the load finishes (while it verifies). */
class CtrlCAtTheEnd extends FakeGpu {
  constructor(readonly controller: AbortController) {
    super();
  }
  override async load(file: ModelFile, options: LoadOptions) {
    const loaded = await super.load(file, options);
    this.controller.abort();
    return loaded;
  }
}

// ─── the widgets ──────────────────────────────────────────────────────────────

describe("the spinner and the progress bar own the keyboard while they run", () => {
  test("raw mode while running: Ctrl-C interrupts, other keys draw nothing, the mode is put back", async () => {
    const input = ttyInput();
    const term = new Terminal();
    let interrupts = 0;
    const s = spinner({ input, output: term.output, interrupt: () => interrupts++ });
    s.start("Working");
    expect(input.modes).toEqual([true]);
    input.write("abc\r");
    await Bun.sleep(30);
    expect(term.screen).not.toContain("abc");
    expect(interrupts).toBe(0);
    input.write(KEY.ctrlC);
    await Bun.sleep(5);
    expect(interrupts).toBe(1);
    s.cancel("Stopped");
    expect(input.modes).toEqual([true, false]);
    input.write(KEY.ctrlC); // after the spinner: not read by it
    await Bun.sleep(5);
    expect(interrupts).toBe(1);
    expect(term.screen).toContain("Working");
    expect(term.screen).toContain("Stopped");
  });

  test("the progress bar draws clack's bar and text, and reads Ctrl-C too", async () => {
    const input = ttyInput();
    const term = new Terminal();
    let interrupts = 0;
    const bar = progressBar({ input, output: term.output, interrupt: () => interrupts++ }, 100);
    bar.start("Uploading");
    bar.advance(50, "Uploading half");
    await Bun.sleep(120); // a frame
    expect(term.screen).toMatch(/━{40} Uploading half/);
    input.write(KEY.ctrlC);
    await Bun.sleep(5);
    bar.stop("Uploaded");
    expect(interrupts).toBe(1);
    expect(input.modes).toEqual([true, false]);
  });
});

// ─── interactive ──────────────────────────────────────────────────────────────

describe("interactive: Ctrl-C pressed while it is busy", () => {
  test("at the upload's progress bar: the load stops, nothing is held, exit 130", async () => {
    const gpu = new FakeGpu();
    gpu.stepMs = 60_000;
    const { term, done } = interactive(gpu);
    await term.waitFor("Which model?");
    term.press(KEY.enter);
    await term.waitFor("Which GPU?");
    term.press(KEY.enter);
    await term.waitFor("Load ");
    term.press(KEY.enter);
    await term.waitFor("Uploading");
    term.press(KEY.ctrlC);
    expect(await done).toBe(130);
    expect(term.screen).toContain("The upload was stopped");
    expect(term.screen).toContain("cancelled: nothing was kept");
    expect(gpu.open).toBe(0);
  });

  test("at the first build's spinner: exit 130, and it does not say it built", async () => {
    const gpu = new FakeGpu();
    gpu.buildMs = 60_000;
    const { term, done } = interactive(gpu);
    await term.waitFor("Which model?");
    term.press(KEY.enter);
    await term.waitFor("Building the CUDA library");
    term.press(KEY.ctrlC);
    expect(await done).toBe(130);
    expect(term.screen).toContain("The build was stopped; nothing was kept");
    expect(term.screen).not.toContain("Built the CUDA library");
    expect(gpu.loads).toHaveLength(0);
  });

  test("a build that fails says so, not that it built", async () => {
    const gpu = new FakeGpu();
    gpu.buildError = new LoadError("NATIVE_LIBRARY", "nvcc failed", "install the CUDA toolkit (nvcc)");
    const { term, done } = interactive(gpu);
    await term.waitFor("Which model?");
    term.press(KEY.enter);
    expect(await done).toBe(1);
    expect(term.screen).toContain("The build failed");
    expect(term.screen).not.toContain("Built the CUDA library");
  });

  test("as the load finishes: the model is freed, exit 130, no summary", async () => {
    const controller = new AbortController();
    const gpu = new CtrlCAtTheEnd(controller);
    const { term, done } = interactive(gpu, controller);
    await term.waitFor("Which model?");
    term.press(KEY.enter);
    await term.waitFor("Which GPU?");
    term.press(KEY.enter);
    await term.waitFor("Load ");
    term.press(KEY.enter);
    expect(await done).toBe(130);
    expect(gpu.loads).toHaveLength(1);
    expect(gpu.open).toBe(0);
    expect(term.screen).toContain("cancelled: the model was freed");
    expect(term.screen).not.toContain("press Enter");
  });
});

// ─── flags ────────────────────────────────────────────────────────────────────

test("--verify, with Ctrl-C as the load finishes: the model is freed, exit 130, no summary or JSON", async () => {
  for (const flags of [["--verify"], ["--verify", "--json"]]) {
    const controller = new AbortController();
    const gpu = new CtrlCAtTheEnd(controller);
    let out = "";
    const stdout = new PassThrough().on("data", (c: Buffer) => (out += c.toString()));
    const error = await loadCommand(["--model", tiny, ...flags], { stdin: new PassThrough(), stdout, stderr: new PassThrough(), interactive: false, gpu, signal: controller.signal }).then(
      () => null,
      (e: unknown) => describeError(e),
    );
    expect([flags.join(" "), error]).toEqual([flags.join(" "), { line: "cancelled: the model was freed", exitCode: 130 }]);
    expect(gpu.open).toBe(0);
    expect(out).not.toContain("in VRAM");
    expect(out).not.toContain('"ledger"');
  }
});
