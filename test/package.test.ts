// gguf-vram as a package: what `bun pm pack` puts in the tarball (what users need
// and nothing of the repository's own), every module the entry points reach
// being in it, package.json's entry points, and the `gguf-vram` command. The
// tarball installed in a project of its own is .ci/run's part (it needs the
// registry for the dependencies).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { ensureModelFixture } from "../src/fixtures/generate.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const bun = process.execPath;
const NO_GPU = { ...process.env, CUDA_VISIBLE_DEVICES: "", NO_COLOR: "1" };
const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  private?: boolean;
  version: string;
  exports: Record<string, string | Record<string, string>>;
  types: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};

const scratch = mkdtempSync(join(tmpdir(), "gguf-vram-package-test-"));
let files: string[] = [];
beforeAll(() => {
  const pack = Bun.spawnSync([bun, "pm", "pack", "--destination", scratch, "--quiet"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  expect([pack.exitCode, pack.stderr.toString()]).toEqual([0, ""]);
  const tarball = readdirSync(scratch).find((f) => f.endsWith(".tgz"))!;
  const list = Bun.spawnSync(["tar", "tzf", join(scratch, tarball)], { stdout: "pipe" });
  files = list.stdout.toString().split("\n").filter(Boolean).map((f) => f.replace(/^package\//, ""));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// ─── the tarball ──────────────────────────────────────────────────────────────

describe("the tarball", () => {
  test("holds the library, the command, the builder, every CUDA source and the README", () => {
    const cuda = readdirSync(join(ROOT, "cuda")).filter((f) => /\.(cu|h)$/.test(f)).map((f) => `cuda/${f}`);
    for (const file of ["package.json", "README.md", "build.ts", "src/index.ts", "src/cli/gguf-vram.ts", "src/build/cache.ts", ...cuda]) expect(files).toContain(file);
  });

  test("holds nothing of the repository's own: no tests, fixtures, benchmarks, CI, scripts, fuzzer or build output", () => {
    const repositoryOnly = /^(test|bench|fixtures|models|scripts|node_modules|build|\.ci|\.gpu|\.git|src\/fuzz)\/|^(src\/cli\/fuzz\.ts|bun\.lock|bunfig\.toml|tsconfig\.json|\.gitignore)$/;
    expect(files.filter((f) => repositoryOnly.test(f))).toEqual([]);
    expect(files.filter((f) => !/^(src\/.*\.ts|cuda\/.+\.(cu|c|h)|build\.ts|package\.json|README\.md|LICENSE)$/.test(f))).toEqual([]);
  });

  test("every module the entry points and the command reach (imports, Workers) is in it, and every package they import is a dependency", () => {
    const transpiler = new Bun.Transpiler({ loader: "ts" });
    const entries = [manifest.types, ...Object.values(manifest.bin), "./build.ts"].map((p) => resolve(ROOT, p));
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      if (!file.endsWith(".ts")) return;
      const code = readFileSync(file, "utf8").replace(/^#!.*/, "");
      const workers = [...code.matchAll(/new URL\("(\.[^"]+\.ts)", import\.meta\.url\)/g)].map((m) => m[1]!);
      for (const path of [...transpiler.scanImports(code).map((i) => i.path), ...workers]) {
        if (path.startsWith(".")) visit(resolve(dirname(file), path));
        else if (!/^(node|bun):/.test(path)) packages.add(path.startsWith("@") ? path.split("/").slice(0, 2).join("/") : path.split("/")[0]!);
      }
    };
    entries.forEach(visit);
    const reached = [...seen].map((f) => relative(ROOT, f));
    expect(reached.length).toBeGreaterThan(50);
    expect(reached.filter((f) => !files.includes(f))).toEqual([]);
    expect([...packages].sort()).toEqual(Object.keys(manifest.dependencies).sort());
  });

  test("package.json: public, with exports, types and bin pointing at files in it; the bin runs with bun", () => {
    expect(manifest.private).toBeUndefined();
    const exported = Object.values(manifest.exports).flatMap((v) => (typeof v === "string" ? [v] : Object.values(v)));
    for (const path of [...exported, manifest.types, ...Object.values(manifest.bin)]) expect(files).toContain(path.replace(/^\.\//, ""));
    expect(Object.keys(manifest.bin)).toEqual(["gguf-vram"]);
    const bin = join(ROOT, manifest.bin["gguf-vram"]!);
    expect(readFileSync(bin, "utf8").split("\n")[0]).toBe("#!/usr/bin/env bun");
    expect(statSync(bin).mode & 0o111).toBe(0o111);
    expect(Object.keys(manifest.dependencies).sort()).toEqual(["@clack/prompts", "zod"]);
  });
});

// ─── the command ──────────────────────────────────────────────────────────────

function gguf(args: string[], cwd = ROOT) {
  const p = Bun.spawnSync([bun, join(ROOT, "src/cli/gguf-vram.ts"), ...args], { cwd, env: NO_GPU, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("the gguf-vram command", () => {
  test("--help lists every command; --version is the package's", () => {
    const help = gguf(["--help"]);
    expect(help.code).toBe(0);
    for (const command of ["load", "inspect", "fixtures", "build"]) expect(help.out).toMatch(new RegExp(`^  ${command} `, "m"));
    expect(gguf(["--version"]).out).toBe(`${manifest.version}\n`);
  }, 30_000);

  test("no command, or one it does not have: usage, exit 2", () => {
    const none = gguf([]);
    expect([none.code, none.out]).toEqual([2, ""]);
    expect(none.err).toStartWith("usage: gguf-vram <command>");
    const bogus = gguf(["serv"]);
    expect(bogus.code).toBe(2);
    expect(bogus.err).toBe('error: gguf-vram has no command "serv": it has load, inspect, fixtures, serve, build (see gguf-vram --help)\n');
  }, 30_000);

  test("inspect and load --dry-run print what their repository scripts print", async () => {
    const model = await ensureModelFixture("tiny-qwen2-q4_k_m");
    const script = (file: string, args: string[]) => Bun.spawnSync([bun, join(ROOT, "src/cli", file), ...args], { cwd: ROOT, env: NO_GPU }).stdout.toString();
    expect(gguf(["inspect", model, "--json"]).out).toBe(script("inspect.ts", [model, "--json"]));
    const load = gguf(["load", "--dry-run", "--json", "--model", model]);
    expect(load.code).toBe(0);
    expect(load.out).toBe(script("load.ts", ["--dry-run", "--json", "--model", model]));
  }, 30_000);

  test("fixtures writes where it is told, and passes on its exit code", () => {
    const dir = mkdtempSync(join(scratch, "fixtures-"));
    const written = gguf(["fixtures", "tiny-llama-mixed", "--dir", dir]);
    expect(written.code).toBe(0);
    expect(existsSync(join(dir, "tiny-llama-mixed.gguf"))).toBe(true);
    const unknown = gguf(["fixtures", "no-such-model"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("no fixture model named no-such-model");
  }, 30_000);
});

// ─── the user's folder ────────────────────────────────────────────────────────

describe("paths resolve against the folder the user stands in", () => {
  let sub = "";
  let model = "";
  beforeAll(async () => {
    model = await ensureModelFixture("tiny-qwen2-q4_k_m");
    sub = join(ROOT, "fixtures", `cwd-test-${process.pid}`); // inside the package, as a user's subfolder is (git ignores fixtures/)
    mkdirSync(sub, { recursive: true });
  });
  afterAll(() => rmSync(sub, { recursive: true, force: true }));

  test("bun run load and bun run inspect typed in a subfolder read a path relative to it", () => {
    const path = relative(sub, model);
    const load = Bun.spawnSync([bun, "run", "load", "--dry-run", "--json", "--model", path], { cwd: sub, env: NO_GPU, stdout: "pipe", stderr: "pipe" });
    expect(load.exitCode).toBe(0);
    const doc = JSON.parse(load.stdout.toString()) as { model: { path: string; fileSize: number } };
    expect([doc.model.path, doc.model.fileSize]).toEqual([path, statSync(model).size]);
    const inspect = Bun.spawnSync([bun, "run", "inspect", path, "--json"], { cwd: sub, env: NO_GPU, stdout: "pipe" });
    expect(inspect.exitCode).toBe(0);
    expect((JSON.parse(inspect.stdout.toString()) as { file: string }).file).toBe(path);
  }, 30_000);

  test("the rule: only the script's own command follows npm_config_local_prefix (bun) or INIT_CWD (npm), and only into the package", async () => {
    const { userFolder } = await import("../src/cli/user-cwd.ts");
    const load = join(ROOT, "src/cli/load.ts");
    const bin = join(ROOT, "src/cli/gguf-vram.ts");
    const script = (text: string, where: Record<string, string>) => ({ npm_lifecycle_script: text, ...where });
    expect(userFolder(script("bun src/cli/load.ts", { npm_config_local_prefix: sub }), ROOT, load)).toBe(sub); // bun run, in a subfolder
    expect(userFolder(script("bun src/cli/load.ts", { npm_config_local_prefix: ROOT, INIT_CWD: sub }), ROOT, load)).toBe(sub); // npm run
    expect(userFolder(script("gguf-vram load", { npm_config_local_prefix: sub }), ROOT, bin)).toBe(sub); // a project's script
    expect(userFolder(script("bun src/cli/load.ts", { npm_config_local_prefix: ROOT }), ROOT, load)).toBeNull(); // typed at the root
    expect(userFolder(script("bun test", { npm_config_local_prefix: sub }), ROOT, load)).toBeNull(); // started by what the script ran
    expect(userFolder(script("bun src/cli/load.ts", { npm_config_local_prefix: tmpdir() }), ROOT, load)).toBeNull(); // outside the package
    expect(userFolder({ npm_config_local_prefix: sub }, ROOT, load)).toBeNull(); // no script at all
  });
});
