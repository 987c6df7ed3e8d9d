// The C client's build target, with a stand-in nvcc as in build.test.ts (it
// "compiles" by copying and "links" by concatenating): `bun run build` builds
// libgguf_vram_client from cuda/client/ and the two sources it shares with
// libgguf_vram, keyed on all of them and on the headers they share, and puts
// its header beside it; a copy of the package without cuda/client/ still
// builds libgguf_vram. The real nvcc builds it in example.test.ts.

import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const bun = process.execPath;
const scratch = mkdtempSync(join(tmpdir(), "gguf-vram-build-client-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// `-c SRC -o OBJ` copies SRC; a link concatenates the objects in the order given.
const FAKE_NVCC = `#!/bin/sh
if [ "$1" = "--version" ]; then echo "fake nvcc, release 1.0"; exit 0; fi
out=""; src=""; objs=""; prev=""
for a in "$@"; do
  case "$prev" in -o) out="$a";; -c) src="$a";; esac
  case "$a" in *.o) objs="$objs $a";; esac
  prev="$a"
done
if [ -n "$src" ]; then cp "$src" "$out"; else : > "$out"; for o in $objs; do cat "$o" >> "$out"; done; fi
`;
const fakeNvcc = join(scratch, "nvcc");
writeFileSync(fakeNvcc, FAKE_NVCC);
chmodSync(fakeNvcc, 0o755);

/** A package folder: build.ts, src/build, and small stand-ins for both libraries' sources. */
function packageCopy(withClient = true): string {
  const dir = mkdtempSync(join(scratch, "package-"));
  cpSync(join(ROOT, "build.ts"), join(dir, "build.ts"));
  cpSync(join(ROOT, "src", "build"), join(dir, "src", "build"), { recursive: true });
  mkdirSync(join(dir, "cuda"));
  for (const [file, text] of [["arena.cu", "ARENA;"], ["vmm.cu", "VMM;"], ["wire.cu", "WIRE;"], ["vmm.h", "// vmm\n"], ["wire.h", "// wire\n"], ["gguf_vram.h", "// api\n"]]) {
    writeFileSync(join(dir, "cuda", file!), text!);
  }
  if (withClient) {
    mkdirSync(join(dir, "cuda", "client"));
    writeFileSync(join(dir, "cuda", "client", "conn.cu"), "CONN;");
    writeFileSync(join(dir, "cuda", "client", "wire.cu"), "A CLIENT FILE OF THE SAME NAME;");
    writeFileSync(join(dir, "cuda", "client", "gguf_vram_client.h"), "// the client's API\n");
  }
  return dir;
}

function build(dir: string, cache: string) {
  const { GGUF_VRAM_CUDA_ARCH: _, ...env } = process.env;
  const p = Bun.spawnSync([bun, "build.ts"], { cwd: dir, env: { ...env, NVCC: fakeNvcc, GGUF_VRAM_CACHE_DIR: cache }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

const clients = (cache: string) => readdirSync(cache).filter((f) => /^libgguf_vram_client-[0-9a-f]{16}\.so$/.test(f));

describe("libgguf_vram_client's target", () => {
  test("bun run build builds both libraries; the client holds its folder's sources, then vmm.cu and wire.cu, and its header is copied beside it", () => {
    const pkg = packageCopy();
    const cache = join(scratch, "both");
    const result = build(pkg, cache);
    expect([result.code, result.err]).toEqual([0, ""]);
    expect(result.out).toContain("building libgguf_vram_client for the host…");
    const [client] = clients(cache);
    // the folder's files first (sorted), then the extra sources: a same-named file in the folder does not replace cuda/wire.cu
    expect(readFileSync(join(cache, client!), "utf8")).toBe("CONN;A CLIENT FILE OF THE SAME NAME;VMM;WIRE;");
    expect(readFileSync(join(cache, "include", "gguf_vram_client.h"), "utf8")).toBe("// the client's API\n");
    const library = readdirSync(cache).find((f) => /^libgguf_vram-[0-9a-f]{16}\.so$/.test(f))!;
    expect(readdirSync(cache).sort()).toEqual(["include", library, "libgguf_vram.so", client!, "libgguf_vram_client.so", "nvcc-version.json"].sort());
    expect(build(pkg, cache).out).toBe(`${join(cache, library)} is up to date\n${join(cache, client!)} is up to date\n`);
  });

  test("a change to a shared source (vmm.cu) or a shared header (wire.h) makes a new client library", () => {
    const pkg = packageCopy();
    const cache = join(scratch, "keys");
    expect(build(pkg, cache).code).toBe(0);
    writeFileSync(join(pkg, "cuda", "vmm.cu"), "VMM, CHANGED;");
    expect(build(pkg, cache).code).toBe(0);
    writeFileSync(join(pkg, "cuda", "wire.h"), "// wire, changed\n");
    expect(build(pkg, cache).code).toBe(0);
    expect(clients(cache)).toHaveLength(3);
  });

  test("a copy without cuda/client/ builds libgguf_vram alone; asking for the client by name there says what is missing", async () => {
    const pkg = packageCopy(false);
    const cache = join(scratch, "without");
    const result = build(pkg, cache);
    expect([result.code, result.err]).toEqual([0, ""]);
    expect(clients(cache)).toEqual([]);
    const p = Bun.spawnSync([bun, "-e", 'import { ensureClientLibrary } from "./build.ts"; await ensureClientLibrary({ quiet: true }).catch((e) => console.log(e.message))'], {
      cwd: pkg,
      env: { ...process.env, NVCC: fakeNvcc, GGUF_VRAM_CACHE_DIR: cache },
      stdout: "pipe",
    });
    expect(p.stdout.toString()).toBe(`no sources of libgguf_vram_client in ${join(pkg, "cuda", "client")}\n`);
  });
});
