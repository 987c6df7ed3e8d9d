// `bun run load` against the files and pipes around it, as real processes: a
// reader that closes the pipe early, three first runs at once on an empty
// fixtures folder, and fixtures folders it cannot write or fill. Each ends as
// a user can act on: the exit status it would have had, all three runs
// succeeding, or one line naming the folder with what to do.

import { beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { projectCopy, ROOT } from "./support/project-copy.ts";
import { removeTempDir, tempDirs } from "./support/temp.ts";
import { wideSparseModel } from "./support/wide-model.ts";

const tempDir = tempDirs();
const bun = process.execPath;
const CLI = join(ROOT, "src/cli/load.ts");
const DEFAULT_MODEL = "qwen2.5-0.5b-instruct-q4_k_m.gguf";
/** No GPU, and no nvcc: a dry run plans without building the library (and without it, a load is exit 1). */
const NO_GPU = { ...process.env, CUDA_VISIBLE_DEVICES: "", NVCC: "/nonexistent/nvcc", NO_COLOR: "1" };

/** Runs a shell line; its stdout and stderr, and the exit status. */
function sh(line: string, env: Record<string, string | undefined>) {
  const p = Bun.spawnSync(["bash", "-c", line], { env, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** A path safe inside single quotes in a shell line. */
const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

let wide = "";
beforeAll(async () => {
  ({ path: wide } = await wideSparseModel(tempDir("gguf-vram-pipe-")));
});

// ─── a pipe closed early ──────────────────────────────────────────────────────

describe("--json into a pipe that closes early (| head -c 100)", () => {
  for (const flags of ["--dry-run", ""]) {
    test(`${flags || "a load (no GPU here)"}: the exit status it has without the pipe, and nothing said about the pipe`, () => {
      const command = `${q(bun)} ${q(CLI)} --json ${flags} --model ${q(wide)}`;
      const whole = sh(`${command} >/dev/null`, NO_GPU);
      const errFile = join(tempDir("gguf-vram-epipe-"), "stderr");
      const r = sh(`${command} 2>${q(errFile)} | head -c 100; s=\${PIPESTATUS[0]}; echo; echo "status $s"`, NO_GPU);
      expect(r.out.startsWith("{")).toBe(true);
      expect(r.out.trim().split("\n").at(-1)).toBe(`status ${whole.code}`);
      expect(readFileSync(errFile, "utf8")).toBe(whole.err);
    });
  }
});

// ─── first runs at once ───────────────────────────────────────────────────────

describe("three first runs at once on an empty fixtures folder", () => {
  test("all succeed, one writes the model, and the folder holds it whole (the default folder and GGUF_VRAM_FIXTURES pointing at it)", async () => {
    const copy = projectCopy(tempDir("gguf-vram-race-"));
    const fixtures = join(copy, "fixtures");
    const cli = join(copy, "src/cli/load.ts");
    const runs = [{}, {}, { GGUF_VRAM_FIXTURES: fixtures }].map((extra) => {
      const env: Record<string, string | undefined> = { ...NO_GPU, ...extra };
      if (!("GGUF_VRAM_FIXTURES" in extra)) delete env.GGUF_VRAM_FIXTURES;
      return Bun.spawn([bun, cli, "--dry-run"], { cwd: copy, env, stdout: "pipe", stderr: "pipe" });
    });
    const results = await Promise.all(runs.map(async (p) => ({ code: await p.exited, err: await new Response(p.stderr).text(), out: await new Response(p.stdout).text() })));
    for (const r of results) {
      expect([r.code, r.err.includes("ENOENT")]).toEqual([0, false]);
      expect(r.out).toContain("VRAM needed");
    }
    expect(results.filter((r) => r.err.includes("creating the synthetic")).length).toBe(1);
    expect(results.filter((r) => r.err.includes("waiting for process")).length).toBeGreaterThanOrEqual(1);
    expect(readdirSync(fixtures).sort()).toEqual([DEFAULT_MODEL, `${DEFAULT_MODEL}.stamp`]);
    const stamp = JSON.parse(readFileSync(join(fixtures, `${DEFAULT_MODEL}.stamp`), "utf8")) as { bytes: number };
    expect(statSync(join(fixtures, DEFAULT_MODEL)).size).toBe(stamp.bytes);
    removeTempDir(copy); // 491 MB
  }, 240_000);
});

// ─── folders it cannot write or fill ──────────────────────────────────────────

/** Asserts the one line a fixtures folder problem gives, and returns it. */
function expectOneLine(r: { code: number | null; err: string }, starts: string, hints: string[]): string {
  expect(r.code).toBe(1);
  const lines = r.err.split("\n").filter((l) => l.startsWith("error:") || l.includes("unexpected"));
  expect(lines).toHaveLength(1);
  const line = lines[0]!;
  expect(line).toStartWith(starts);
  for (const h of hints) expect(line).toContain(h);
  expect(line).not.toMatch(/unexpected error|report it|--debug/);
  return line;
}

const unshareWorks = Bun.which("unshare") !== null && Bun.spawnSync(["unshare", "-Urm", "true"]).exitCode === 0;
const root = process.getuid?.() === 0;

describe("a fixtures folder it cannot write or fill: one line naming the folder, a hint, exit 1", () => {
  test("under a regular file (ENOTDIR)", () => {
    const file = join(tempDir("gguf-vram-notdir-"), "a-file");
    writeFileSync(file, "");
    const dir = join(file, "fixtures");
    const r = sh(`${q(bun)} ${q(CLI)} --dry-run`, { ...NO_GPU, GGUF_VRAM_FIXTURES: dir });
    expectOneLine(r, `error: the fixtures folder ${dir} cannot be written: a part of its path is a file, not a folder (ENOTDIR)`, ["GGUF_VRAM_FIXTURES", "--model"]);
  });

  // Permission bits do not stop root: as root the folder is made read-only by a bind mount instead.
  const how = !root ? "mode 0500 (EACCES)" : unshareWorks ? "a read-only bind mount, as root (EROFS)" : null;
  test.skipIf(how === null)(`without write permission: ${how ?? "[skipped: running as root, and no user namespaces to mount a read-only folder]"}`, () => {
    const dir = tempDir("gguf-vram-readonly-");
    let r;
    if (!root) {
      chmodSync(dir, 0o500);
      r = sh(`${q(bun)} ${q(CLI)} --dry-run`, { ...NO_GPU, GGUF_VRAM_FIXTURES: dir });
      chmodSync(dir, 0o700);
    } else {
      r = sh(`unshare -Urm sh -c 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$1" "$2" --dry-run' ${q(dir)} ${q(bun)} ${q(CLI)}`, { ...NO_GPU, GGUF_VRAM_FIXTURES: dir });
    }
    expectOneLine(r, `error: the fixtures folder ${dir} cannot be written: `, ["GGUF_VRAM_FIXTURES", "--model"]);
    expect(readdirSync(dir)).toEqual([]);
  });

  test.skipIf(!unshareWorks)(`a full disk: a 16 MiB tmpfs (ENOSPC), and the partial file removed${unshareWorks ? "" : " [skipped: no user namespaces to mount a tmpfs]"}`, () => {
    const dir = tempDir("gguf-vram-full-");
    // The tmpfs lives as long as its namespace: list it there, after the command.
    const r = sh(`unshare -Urm sh -c 'mount -t tmpfs -o size=16m none "$0" && "$1" "$2" --dry-run; s=$?; echo "left: $(ls -A "$0")"; exit $s' ${q(dir)} ${q(bun)} ${q(CLI)}`, { ...NO_GPU, GGUF_VRAM_FIXTURES: dir });
    expectOneLine(r, `error: there is no room for ${DEFAULT_MODEL} (491 MB) in ${dir}: the disk is full (ENOSPC)`, ["free 491 MB there", "GGUF_VRAM_FIXTURES", "--model"]);
    expect(r.out.trim()).toBe("left:");
  });

  test("a file-size limit (ulimit -f, EFBIG: the full disk's path without a mount), and the partial file removed", () => {
    const dir = tempDir("gguf-vram-fsize-");
    const r = sh(`trap "" XFSZ; ulimit -f 10240; exec ${q(bun)} ${q(CLI)} --dry-run`, { ...NO_GPU, GGUF_VRAM_FIXTURES: dir });
    expectOneLine(r, `error: there is no room for ${DEFAULT_MODEL} (491 MB) in ${dir}: the file would be larger than this process may write (ulimit -f) (EFBIG)`, ["ulimit -f unlimited", "--model"]);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("bun run fixtures --dir under a regular file: the same line", () => {
    const file = join(tempDir("gguf-vram-notdir-"), "a-file");
    writeFileSync(file, "");
    const r = sh(`${q(bun)} ${q(join(ROOT, "src/cli/fixtures.ts"))} tiny-qwen2-q4_k_m --dir ${q(join(file, "fx"))}`, NO_GPU);
    expectOneLine(r, `error: the fixtures folder ${join(file, "fx")} cannot be written: a part of its path is a file, not a folder (ENOTDIR)`, ["GGUF_VRAM_FIXTURES"]);
  });
});
