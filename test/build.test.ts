// The native build as an installed package meets it, with a stand-in nvcc (a
// shell script that "compiles" by copying, slowly, and leaves temporary files in
// $TMPDIR as nvcc does): libraries land in the per-user cache under a key of
// everything that went into them, never in the package folder; builds at once
// never mix; Ctrl-C leaves nothing behind; a cache folder that cannot be made
// and a missing nvcc are one line each. The real nvcc is in cli-process.test.ts.

import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { nativeCacheDir } from "../src/build/cache.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { folderError, NativeBuildError } from "../src/build/errors.ts";
import { findNvcc } from "../src/build/nvcc.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const bun = process.execPath;
const scratch = mkdtempSync(join(tmpdir(), "gguf-vram-build-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// `-c SRC -o OBJ` copies SRC after $FAKE_NVCC_DELAY seconds (with a tmpxft file in
// $TMPDIR meanwhile, as nvcc has); a link appends each object to the output with a
// pause between them, so two links into one file would interleave.
const FAKE_NVCC = `#!/bin/sh
[ -n "$FAKE_NVCC_LOG" ] && echo "$*" >> "$FAKE_NVCC_LOG"
if [ "$1" = "--version" ]; then echo "fake nvcc, release \${FAKE_NVCC_RELEASE:-1.0}"; exit 0; fi
out=""; src=""; objs=""; prev=""
for a in "$@"; do
  case "$prev" in -o) out="$a";; -c) src="$a";; esac
  case "$a" in *.o) objs="$objs $a";; esac
  prev="$a"
done
if [ -n "$src" ]; then
  echo $$ > "$TMPDIR/tmpxft_fake_$$.pid"
  sleep "\${FAKE_NVCC_DELAY:-0}"
  cp "$src" "$out" && rm -f "$TMPDIR/tmpxft_fake_$$.pid"
else
  : > "$out"
  for o in $objs; do cat "$o" >> "$out"; sleep 0.05; done
fi
`;

const fakeNvcc = join(scratch, "nvcc");
writeFileSync(fakeNvcc, FAKE_NVCC);
chmodSync(fakeNvcc, 0o755);

/** A package folder as installed: build.ts, src/build, and two small sources. */
function packageCopy(): string {
  const dir = mkdtempSync(join(scratch, "package-"));
  cpSync(join(ROOT, "build.ts"), join(dir, "build.ts"));
  cpSync(join(ROOT, "src", "build"), join(dir, "src", "build"), { recursive: true });
  mkdirSync(join(dir, "cuda"));
  writeFileSync(join(dir, "cuda", "a.cu"), "A".repeat(1000));
  writeFileSync(join(dir, "cuda", "b.cu"), "B".repeat(1000));
  writeFileSync(join(dir, "cuda", "gguf_vram.h"), "// header\n");
  return dir;
}

function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

function env(extra: Record<string, string>): Record<string, string> {
  const { GGUF_VRAM_CACHE_DIR: _, XDG_CACHE_HOME: __, GGUF_VRAM_CUDA_ARCH: ___, ...rest } = process.env;
  return { ...(rest as Record<string, string>), NVCC: fakeNvcc, NO_COLOR: "1", ...extra };
}

function build(dir: string, extra: Record<string, string>, args: string[] = []) {
  const p = Bun.spawnSync([bun, "build.ts", ...args], { cwd: dir, env: env(extra), stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** Whether `pid` runs (a zombie, killed but not yet reaped by init, does not). */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function libraries(cache: string): string[] {
  return readdirSync(cache).filter((f) => /^libgguf_vram-[0-9a-f]{16}\.so$/.test(f));
}

describe("where the library goes", () => {
  test("the cache folder: GGUF_VRAM_CACHE_DIR, else $XDG_CACHE_HOME/gguf-vram, else ~/.cache/gguf-vram", () => {
    expect(nativeCacheDir({ GGUF_VRAM_CACHE_DIR: "/srv/shared", XDG_CACHE_HOME: "/x", HOME: "/home/u" })).toBe("/srv/shared");
    expect(nativeCacheDir({ XDG_CACHE_HOME: "/x", HOME: "/home/u" })).toBe("/x/gguf-vram");
    expect(nativeCacheDir({ HOME: "/home/u" })).toBe("/home/u/.cache/gguf-vram");
    expect(nativeCacheDir({ XDG_CACHE_HOME: "relative", HOME: "/home/u" })).toBe("/home/u/.cache/gguf-vram"); // the XDG spec ignores it
  });

  test("built into the XDG cache under its key, the package folder untouched; the next run finds it without nvcc", () => {
    const pkg = packageCopy();
    const before = listing(pkg);
    const xdg = join(scratch, "xdg");
    const log = join(scratch, "nvcc-calls.log");
    const first = build(pkg, { XDG_CACHE_HOME: xdg, FAKE_NVCC_LOG: log });
    expect([first.code, first.err]).toEqual([0, ""]);
    const cache = join(xdg, "gguf-vram");
    const [library] = libraries(cache);
    expect(first.out).toContain(`built ${join(cache, library!)} for sm_80 sm_86 sm_89 sm_90 + PTX`);
    expect(readFileSync(join(cache, library!), "utf8")).toBe("A".repeat(1000) + "B".repeat(1000));
    expect(readdirSync(cache).sort()).toEqual([library!, "libgguf_vram.so", "nvcc-version.json"]);
    expect(listing(pkg)).toEqual(before);

    const calls = readFileSync(log, "utf8").split("\n").filter(Boolean).length;
    const second = build(pkg, { XDG_CACHE_HOME: xdg, FAKE_NVCC_LOG: log });
    expect(second.out).toBe(`${join(cache, library!)} is up to date\n`);
    expect(readFileSync(log, "utf8").split("\n").filter(Boolean).length).toBe(calls); // not even --version
  });

  test("a new source, other archs or another nvcc version make a library of their own; the same inputs find the same one", () => {
    const pkg = packageCopy();
    const cache = join(scratch, "keys");
    expect(build(pkg, { GGUF_VRAM_CACHE_DIR: cache }).code).toBe(0);
    expect(build(pkg, { GGUF_VRAM_CACHE_DIR: cache, GGUF_VRAM_CUDA_ARCH: "90" }).code).toBe(0);
    const newerNvcc = join(scratch, "nvcc-2.0");
    writeFileSync(newerNvcc, FAKE_NVCC.replace("${FAKE_NVCC_RELEASE:-1.0}", "2.0"));
    chmodSync(newerNvcc, 0o755);
    expect(build(pkg, { GGUF_VRAM_CACHE_DIR: cache, NVCC: newerNvcc }).code).toBe(0);
    writeFileSync(join(pkg, "cuda", "gguf_vram.h"), "// header, changed\n");
    expect(build(pkg, { GGUF_VRAM_CACHE_DIR: cache }).code).toBe(0);
    expect(libraries(cache)).toHaveLength(4);
    expect(build(pkg, { GGUF_VRAM_CACHE_DIR: cache }).out).toContain("is up to date");
    expect(build(pkg, { GGUF_VRAM_CACHE_DIR: cache, NVCC: newerNvcc }).out).toContain("built "); // the new header with it
    expect(libraries(cache)).toHaveLength(5);
  });
});

describe("builds at once, and interrupted ones", () => {
  test("two processes building the same library at once both end with the whole library, and nothing else is left", async () => {
    const pkg = packageCopy();
    const cache = join(scratch, "together");
    const start = () => Bun.spawn([bun, "build.ts"], { cwd: pkg, env: env({ GGUF_VRAM_CACHE_DIR: cache, FAKE_NVCC_DELAY: "0.3" }), stdout: "pipe", stderr: "pipe" });
    const [a, b] = [start(), start()];
    expect([await a.exited, await b.exited]).toEqual([0, 0]);
    expect(await new Response(a.stdout).text()).toContain("built ");
    expect(await new Response(b.stdout).text()).toContain("built ");
    const [library, ...others] = libraries(cache);
    expect(others).toEqual([]);
    expect(readFileSync(join(cache, library!), "utf8")).toBe("A".repeat(1000) + "B".repeat(1000));
    expect(readdirSync(cache).filter((f) => f.startsWith("."))).toEqual([]);
  }, 30_000);

  test("Ctrl-C mid-build: exit 130 with the tool's line; nvcc's processes and temporary files are gone, none in TMPDIR", async () => {
    const pkg = packageCopy();
    const cache = join(scratch, "interrupted");
    const userTmp = mkdtempSync(join(scratch, "tmp-"));
    const child = Bun.spawn([bun, "build.ts"], { cwd: pkg, env: env({ GGUF_VRAM_CACHE_DIR: cache, FAKE_NVCC_DELAY: "30", TMPDIR: userTmp }), stdout: "pipe", stderr: "pipe" });
    const pidFiles = () => {
      const folders = existsSync(cache) ? readdirSync(cache).filter((f) => f.startsWith(".build-")) : [];
      return folders.flatMap((f) => (existsSync(join(cache, f, "tmp")) ? readdirSync(join(cache, f, "tmp")).map((t) => join(cache, f, "tmp", t)) : []));
    };
    const t0 = performance.now();
    while (pidFiles().length === 0) {
      if (performance.now() - t0 > 20_000 || child.exitCode !== null) throw new Error(`the stand-in nvcc never started: ${await new Response(child.stderr).text()}`);
      await Bun.sleep(20);
    }
    const nvccPids = pidFiles().map((file) => Number(readFileSync(file, "utf8")));
    child.kill("SIGINT");
    expect(await child.exited).toBe(130);
    expect(await new Response(child.stderr).text()).toBe("cancelled: nothing was kept; it builds again on the next run\n");
    expect(readdirSync(cache)).toEqual(["nvcc-version.json"]);
    expect(readdirSync(userTmp)).toEqual([]);
    for (const pid of nvccPids) expect(isRunning(pid)).toBe(false);
  }, 30_000);

  test("the build folder of a process that died mid-build is removed by the next build", () => {
    const pkg = packageCopy();
    const cache = join(scratch, "abandoned");
    const dead = Bun.spawnSync(["true"]).pid;
    const abandoned = join(cache, `.build-${hostname()}-${dead}-x1y2z3`);
    mkdirSync(join(abandoned, "tmp"), { recursive: true });
    writeFileSync(join(abandoned, "tmp", "tmpxft_0000_00000000-1.cpp"), "");
    expect(build(pkg, { GGUF_VRAM_CACHE_DIR: cache }).code).toBe(0);
    expect(existsSync(abandoned)).toBe(false);
  });
});

describe("one line for what the user must fix", () => {
  test("a cache folder that cannot be created: one line naming it, with a hint, exit 1", () => {
    const pkg = packageCopy();
    const blocker = join(scratch, "a-file");
    writeFileSync(blocker, "");
    const r = build(pkg, { GGUF_VRAM_CACHE_DIR: join(blocker, "cache") });
    expect(r.code).toBe(1);
    expect(r.err).toBe(`error: creating the cache folder in ${join(blocker, "cache")} failed: a file is in the way of the folder — remove or rename that file, or set GGUF_VRAM_CACHE_DIR to a folder you can write\n`);
  });

  test("bun run load with a cache folder that cannot be created: the same line first, exit 1, no stack", async () => {
    const blocker = join(scratch, "another-file");
    writeFileSync(blocker, "");
    const model = await ensureModelFixture("tiny-qwen2-q4_k_m");
    const p = Bun.spawnSync([bun, "src/cli/load.ts", "--model", model], { cwd: ROOT, env: { ...process.env, GGUF_VRAM_CACHE_DIR: join(blocker, "cache"), NO_COLOR: "1" }, stderr: "pipe" });
    // load then shows what it would have done (the dry-run plan), as it does without a GPU
    const lines = p.stderr.toString().split("\n").filter(Boolean);
    expect(p.exitCode).toBe(1);
    expect(lines[0]).toBe(`error: creating the cache folder in ${join(blocker, "cache")} failed: a file is in the way of the folder — remove or rename that file, or set GGUF_VRAM_CACHE_DIR to a folder you can write`);
    expect(lines.filter((line) => line.startsWith("error:") || /^\s+at /.test(line))).toHaveLength(1);
  });

  test("each file-system cause has its own hint: permissions, a read-only disk, a full disk", () => {
    const hint = (code: string) => {
      const e = folderError(Object.assign(new Error(code), { code }), "/c", "creating the cache folder") as NativeBuildError;
      return `${e.message} — ${e.hint}`;
    };
    expect(hint("EACCES")).toBe("creating the cache folder in /c failed: permission denied — check the folder's owner and permissions, or set GGUF_VRAM_CACHE_DIR to a folder you can write");
    expect(hint("EROFS")).toBe("creating the cache folder in /c failed: the file system is read-only — set GGUF_VRAM_CACHE_DIR to a folder on a writable disk");
    expect(hint("ENOSPC")).toBe("creating the cache folder in /c failed: no space left on the disk (ENOSPC) — free some space there (the library needs a few MB), or set GGUF_VRAM_CACHE_DIR to a folder you can write");
    const plain = new Error("not a file-system error");
    expect(folderError(plain, "/c", "x")).toBe(plain);
  });

  test("no nvcc anywhere: a NativeBuildError saying where it looked and how to install it", () => {
    expect(() => findNvcc({ PATH: "" }, [])).toThrow(NativeBuildError);
    try {
      findNvcc({ PATH: "" }, []);
    } catch (e) {
      expect((e as NativeBuildError).message).toBe("nvcc was not found (looked at $NVCC, PATH, $CUDA_HOME/bin, $CUDA_PATH/bin and nowhere else): the native CUDA library cannot be built");
      expect((e as NativeBuildError).hint).toContain("install the CUDA toolkit (nvcc), e.g. `apt install cuda-toolkit-13-0`");
    }
  });

  test("NVCC pointing nowhere: one line, exit 1", () => {
    const r = build(packageCopy(), { NVCC: join(scratch, "no-such-nvcc"), GGUF_VRAM_CACHE_DIR: join(scratch, "unused") });
    expect(r.code).toBe(1);
    expect(r.err).toBe(`error: NVCC is set to ${join(scratch, "no-such-nvcc")}, which does not exist — unset NVCC or point it at nvcc; install the CUDA toolkit (nvcc), e.g. \`apt install cuda-toolkit-13-0\` or from https://developer.nvidia.com/cuda-downloads, or point NVCC or CUDA_HOME at it\n`);
  });
});
