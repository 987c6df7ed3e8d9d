// `bun run load` in a real pseudo-terminal, tried as a new user would: Ctrl-C
// pressed at each spinner (looking for models, writing the synthetic model,
// building the library) cancels as SIGINT does — exit 130, the tool's own
// `cancelled: …` line, nothing half-written — and other keys neither echo nor
// break the drawing; CI never prompts; the same mistake is the same exit code
// with prompts or without; the search looks where the fixtures go.

import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, linkSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { nativeCacheDir } from "../src/build/cache.ts";
import { fixturesDir, ensureModelFixture } from "../src/fixtures/generate.ts";
import { KEY, Pty } from "./support/pty.ts";
import { projectCopy, ROOT } from "./support/project-copy.ts";
import { tempDirs } from "./support/temp.ts";
import { wideSparseModel } from "./support/wide-model.ts";

const tempDir = tempDirs();
const bun = process.execPath;
const CLI = join(ROOT, "src/cli/load.ts");
const home = tempDir("gguf-vram-home-"); // no caches of the user's to search

/** A terminal session's environment: no GPU, not CI, an empty home (the built library kept), fixtures in `fixtures`. */
function envFor(fixtures: string | undefined, extra: Record<string, string> = {}) {
  const base = { CUDA_VISIBLE_DEVICES: "", HOME: home, XDG_CACHE_HOME: join(home, ".cache"), GGUF_VRAM_CACHE_DIR: nativeCacheDir(), TERM: "xterm-256color", GGUF_VRAM_FIXTURES: fixtures };
  const env: Record<string, string | undefined> = { ...process.env, ...base, ...extra };
  if (!("CI" in extra)) delete env.CI;
  if (fixtures === undefined) delete env.GGUF_VRAM_FIXTURES;
  return env;
}

/** Files a cancelled write may not leave: the model, its partial files, its lock. */
function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.includes("qwen2.5"));
}

let tiny = "";
beforeAll(async () => {
  tiny = await ensureModelFixture("tiny-qwen2-q4_k_m");
  await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m"); // the default model, for the CI run
});

// ─── Ctrl-C at a spinner ──────────────────────────────────────────────────────

describe("Ctrl-C pressed at a spinner: exit 130, the tool's line, nothing left", () => {
  test("while looking for models (200 headers to read): no model question follows, stray keys are not echoed", async () => {
    const cwd = tempDir("gguf-vram-search-");
    const { path } = await wideSparseModel(tempDir("gguf-vram-wide-"));
    mkdirSync(join(cwd, "models"));
    for (let i = 0; i < 200; i++) linkSync(path, join(cwd, "models", `wide-${i}.gguf`));
    const term = new Pty([bun, CLI], { cwd, env: envFor(tempDir("gguf-vram-fx-")) });
    await term.waitFor("Looking for GGUF models");
    term.press("q", "z", KEY.enter, KEY.ctrlC);
    expect(await term.exit()).toBe(130);
    expect(term.flat).toContain("Stopped looking for models");
    expect(term.flat).toContain("cancelled: nothing is held");
    expect(term.screen).not.toContain("Which model?");
    expect(term.screen).not.toContain("qz");
  }, 180_000);

  test("while the synthetic model is written: the prompt says where it goes, the partial file is removed", async () => {
    const fixtures = tempDir("gguf-vram-fx-");
    const term = new Pty([bun, CLI], { cwd: tempDir("gguf-vram-cwd-"), env: envFor(fixtures) });
    await term.waitFor("so there is something to load?");
    const question = term.flat;
    term.press(KEY.enter);
    await term.waitFor("Writing the synthetic model");
    term.press("a", "b", "c");
    await Bun.sleep(200); // a few frames drawn after the keys
    term.press(KEY.ctrlC);
    expect(await term.exit()).toBe(130);
    const afterSpinner = term.screen.slice(term.screen.indexOf("Writing the synthetic model"));
    expect(afterSpinner).not.toContain("abc");
    expect(afterSpinner).toContain("cancelled: writing the model was stopped; the partial file was removed");
    expect(leftovers(fixtures)).toEqual([]);
    expect(question).toContain(`as ${join(fixtures, "qwen2.5-0.5b-instruct-q4_k_m.gguf")}`);
  }, 180_000);

  test("twice while the synthetic model is written: exits at once, and still leaves nothing", async () => {
    const fixtures = tempDir("gguf-vram-fx-");
    const term = new Pty([bun, CLI], { cwd: tempDir("gguf-vram-cwd-"), env: envFor(fixtures) });
    await term.waitFor("so there is something to load?");
    term.press(KEY.enter);
    await term.waitFor("Writing the synthetic model");
    term.press(KEY.ctrlC, KEY.ctrlC);
    expect(await term.exit()).toBe(130);
    expect(term.flat).toContain("cancelled");
    expect(leftovers(fixtures)).toEqual([]);
  }, 180_000);

  const nvcc = Bun.which("nvcc") ?? (Bun.file("/usr/local/cuda/bin/nvcc").size > 0 ? "/usr/local/cuda/bin/nvcc" : null);
  test.skipIf(!nvcc)(`during the first build of the native library (a fresh copy of the project)${nvcc ? "" : " [skipped: no nvcc on this machine]"}`, async () => {
    const copy = projectCopy(tempDir("gguf-vram-fresh-"));
    const model = join(copy, "tiny.gguf");
    copyFileSync(tiny, model);
    const term = new Pty([bun, join(copy, "src/cli/load.ts"), model], { cwd: copy, env: envFor(tempDir("gguf-vram-fx-"), { GGUF_VRAM_CACHE_DIR: tempDir("gguf-vram-cache-") }) });
    await term.waitFor("Building the CUDA library");
    await Bun.sleep(300); // nvcc is running
    term.press("k", KEY.ctrlC);
    expect(await term.exit()).toBe(130);
    expect(term.flat).toContain("The build was stopped; nothing was kept");
    expect(term.flat).toContain("cancelled: the native library's build was stopped; nothing was kept");
    expect(term.screen).not.toContain("Built the CUDA library");
  }, 180_000);
});

// ─── CI, usage, where it looks ────────────────────────────────────────────────

describe("in a terminal", () => {
  test("CI=1 never prompts: it loads the default model as through a pipe, with the same exit code", async () => {
    const cwd = tempDir("gguf-vram-cwd-");
    const env = envFor(fixturesDir(), { CI: "1" });
    const piped = Bun.spawnSync([bun, CLI], { cwd, env, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const term = new Pty([bun, CLI], { cwd, env });
    expect(await term.exit()).toBe(piped.exitCode);
    expect(term.flat).toContain("no --model given: loading");
    expect(term.flat).toContain("VRAM needed");
    expect(term.screen).not.toContain("gguf-vram — load a GGUF model");
  }, 180_000);

  test("CI=0 and CI=false are not CI: it asks", async () => {
    const cwd = tempDir("gguf-vram-cwd-");
    mkdirSync(join(cwd, "models"));
    copyFileSync(tiny, join(cwd, "models", "tiny.gguf"));
    for (const value of ["0", "false", ""]) {
      const term = new Pty([bun, CLI], { cwd, env: envFor(tempDir("gguf-vram-fx-"), { CI: value }) });
      await term.waitFor("Which model?");
      term.press(KEY.ctrlC);
      expect([value, await term.exit()]).toEqual([value, 130]);
    }
  }, 180_000);

  test("two model paths: the same usage error, exit 2, in a terminal and through a pipe", async () => {
    const term = new Pty([bun, CLI, tiny, tiny], { env: envFor(undefined) });
    expect(await term.exit()).toBe(2);
    const piped = Bun.spawnSync([bun, CLI, tiny, tiny], { env: envFor(undefined), stdin: "pipe" });
    expect(piped.exitCode).toBe(2);
    const line = piped.stderr.toString().trim();
    expect(line).toBe("error: give one model: a path, or --model (see bun run load --help)");
    expect(term.flat).toContain(line);
  }, 180_000);

  test("the search looks where GGUF_VRAM_FIXTURES points", async () => {
    const fixtures = tempDir("gguf-vram-fx-");
    copyFileSync(tiny, join(fixtures, "tiny-qwen2-q4_k_m.gguf"));
    const term = new Pty([bun, CLI], { cwd: tempDir("gguf-vram-cwd-"), env: envFor(fixtures) });
    await term.waitFor("Which model?");
    expect(term.flat).toContain("Found 1 model");
    expect(term.flat).toContain("$GGUF_VRAM_FIXTURES");
    term.press(KEY.ctrlC);
    expect(await term.exit()).toBe(130);
  }, 180_000);

  test("the search looks in the default fixtures folder, from any folder", async () => {
    const copy = projectCopy(tempDir("gguf-vram-default-"));
    mkdirSync(join(copy, "fixtures"));
    copyFileSync(tiny, join(copy, "fixtures", "tiny-qwen2-q4_k_m.gguf"));
    const term = new Pty([bun, join(copy, "src/cli/load.ts")], { cwd: tempDir("gguf-vram-cwd-"), env: envFor(undefined) });
    await term.waitFor("Which model?");
    expect(term.flat).toContain("Found 1 model");
    expect(term.flat).toContain(join(copy, "fixtures"));
    term.press(KEY.ctrlC);
    expect(await term.exit()).toBe(130);
  }, 180_000);
});
