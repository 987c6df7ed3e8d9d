// bun build.ts [--native] [--force] [--quiet] — builds the native libraries
// (src/build/targets.ts: libgguf_vram from cuda/*.cu, and libgguf_vram_client,
// the C client for engines, from cuda/client/*.cu) with nvcc into the per-user
// cache (src/build/cache.ts), only when no library built from the same sources,
// flags, nvcc and GPU architectures is there yet. Ctrl-C kills nvcc and leaves
// nothing behind. Exit codes: 0, 1 build failed, 2 usage, 130 cancelled.
//
// Importable: ensureNativeLibrary() returns the library's path, building it
// first when needed; when it is there that costs a few file reads and a hash.
//
// Targets: sm_80 sm_86 sm_89 sm_90 + compute_90 PTX (which newer GPUs JIT) by
// default; --native or GGUF_VRAM_CUDA_ARCH=native builds for the GPU nvidia-smi
// reports (falling back to the default list); GGUF_VRAM_CUDA_ARCH=90 or "86,90"
// builds exactly those. cudart is linked statically, so the library depends only
// on the driver (libcuda.so.1), which the runtime loads at the first CUDA call.

import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { availableParallelism, homedir } from "node:os";
import { basename, join, relative } from "node:path";
import { cachedLibraryPath, installLibrary, latestLibraryPath, makeBuildFolder, nativeCacheDir, rememberedVersionPath, writeQuietly } from "./src/build/cache.ts";
import { headerFolder, installHeaders } from "./src/build/headers.ts";
import { NativeBuildError } from "./src/build/errors.ts";
import { archKey, archRequest, describeArchs, findNvcc, gencodeFlags, nvccVersion, readRememberedVersion, resolveArchs, runTool, type NvccVersion } from "./src/build/nvcc.ts";
import { NATIVE_TARGETS, nativeTarget, type NativeTarget, type TargetName } from "./src/build/targets.ts";

export { NativeBuildError } from "./src/build/errors.ts";
export { nativeCacheDir } from "./src/build/cache.ts";
export { ensureExample } from "./src/build/example.ts";
export { NATIVE_TARGETS, type TargetName } from "./src/build/targets.ts";

/** The package root: the sources are read from here, and nothing is written here. */
const ROOT = import.meta.dir;

/**
 * libgguf_vram built last on this machine: a link in the cache to its keyed file
 * (for nm, ldd and callers that only pass a path along); ensureNativeLibrary()
 * returns the file that matches these sources.
 */
export const NATIVE_LIBRARY_PATH = latestLibraryPath(nativeCacheDir(), "libgguf_vram");

export interface BuildOptions {
  /** Build only for the GPU of this machine (nvidia-smi); default: GGUF_VRAM_CUDA_ARCH, else sm_80..sm_90 + PTX. */
  native?: boolean;
  /** Rebuild even when the cache has the library. */
  force?: boolean;
  /** Print nothing, not even "built …" or nvcc's warnings. */
  quiet?: boolean;
  /** Stops a build in progress: nvcc is killed and its partial output removed. */
  signal?: AbortSignal;
  /** Called when a build starts (it takes several seconds), with what it builds for; not called when the cache has it. */
  onBuild?: (targets: string) => void;
}

// ─── the cache key ────────────────────────────────────────────────────────────

/** A file of a target: its name in the cache key (a name in the source folder, or the path of an extra source) and its path from the root. */
interface SourceFile {
  readonly name: string;
  readonly path: string;
}

function sourceFiles(target: NativeTarget): SourceFile[] {
  const dir = join(ROOT, target.sourceDir);
  const isSource = (file: string) => [...target.compiled, ...target.included].some((ext) => file.endsWith(ext));
  const files = existsSync(dir) ? readdirSync(dir).filter(isSource).sort() : [];
  if (!files.some((file) => target.compiled.some((ext) => file.endsWith(ext)))) {
    throw new NativeBuildError(`no sources of ${target.name} in ${dir}`, "reinstall gguf-vram, or run from a complete checkout");
  }
  const extra = target.extraSources ?? [];
  const missing = extra.find((path) => !existsSync(join(ROOT, path)));
  if (missing) throw new NativeBuildError(`${missing}, a source of ${target.name}, is missing`, "reinstall gguf-vram, or run from a complete checkout");
  return [...files.map((name) => ({ name, path: join(target.sourceDir, name) })), ...extra.map((path) => ({ name: path, path }))];
}

/** sha256 of the target's name, every source's name and bytes, the flags (archs included) and nvcc's version. */
function buildKey(target: NativeTarget, files: SourceFile[], flags: string[], nvcc: NvccVersion): string {
  const hasher = new Bun.CryptoHasher("sha256");
  hasher.update(`${target.name}\0`);
  for (const file of files) hasher.update(`${file.name}\0`).update(readFileSync(join(ROOT, file.path))).update("\0");
  for (const file of target.alsoHashed ?? []) hasher.update(`${file}\0`).update(readFileSync(join(ROOT, file))).update("\0");
  hasher.update(flags.join(" ")).update("\0").update(nvcc.version);
  return hasher.digest("hex");
}

// ─── compiling ────────────────────────────────────────────────────────────────

/** Compiles each source on its own (in parallel), then links them into `output`; returns nvcc's warnings. */
async function compile(target: NativeTarget, nvcc: string, files: SourceFile[], gencode: string[], folder: string, output: string, signal?: AbortSignal): Promise<string> {
  const sources = files.filter((file) => target.compiled.some((ext) => file.name.endsWith(ext))).map((file) => file.path);
  const temporary = join(folder, "tmp");
  mkdirSync(temporary);
  const cpus = availableParallelism();
  const threads = String(Math.max(1, Math.floor(cpus / sources.length)));
  const jobs = sources.map((source) => {
    // an extra source may share its name with one in the folder: its whole path names its object
    const object = join(folder, `${source.startsWith(`${target.sourceDir}/`) ? basename(source) : source.replaceAll("/", "_")}.o`);
    const command = [nvcc, ...target.compileFlags, ...gencode, "--threads", threads, "-c", source, "-o", object];
    return { source, object, command };
  });
  const warnings: string[] = [];
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    for (let job = jobs[next++]; job; job = jobs[next++]) {
      const result = await runTool(job.command, ROOT, temporary, signal);
      if (!result.ok) failures.push(result.output || `nvcc failed on ${job.source}`);
      else if (result.output) warnings.push(result.output);
    }
  };
  await Promise.all(Array.from({ length: Math.min(cpus, jobs.length) }, worker));
  if (failures.length > 0) throw new NativeBuildError(`nvcc failed:\n${failures.join("\n")}`, `fix the sources in ${target.sourceDir}/, or report this with your nvcc version`);

  const link = await runTool([nvcc, ...target.linkFlags, ...jobs.map((job) => job.object), "-o", output], ROOT, temporary, signal);
  if (!link.ok) throw new NativeBuildError(`linking ${target.name} failed:\n${link.output}`, "check that the CUDA toolkit has libcudart_static.a");
  if (link.output) warnings.push(link.output);
  return warnings.join("\n");
}

// ─── API ──────────────────────────────────────────────────────────────────────

let printUpToDate = false;

/** `~/…` for paths in the home folder, relative paths under the working directory. */
function displayPath(path: string): string {
  const home = homedir();
  if (path.startsWith(`${home}/`)) return `~/${path.slice(home.length + 1)}`;
  const here = relative(process.cwd(), path);
  return here.startsWith("..") ? path : here;
}

/** Builds the library `name` into the cache when it is not there; returns its absolute path. */
export async function ensureNative(name: TargetName, options: BuildOptions = {}): Promise<string> {
  const target = nativeTarget(name);
  const files = sourceFiles(target);
  const nvccPath = findNvcc();
  const cacheDir = nativeCacheDir();
  const versionFile = rememberedVersionPath(cacheDir);
  const remembered = readRememberedVersion(versionFile);
  const nvcc = nvccVersion(nvccPath, remembered);
  if (nvcc !== remembered) writeQuietly(versionFile, `${JSON.stringify(nvcc, null, 2)}\n`);
  const request = archRequest(options.native);
  const key = buildKey(target, files, [...target.compileFlags, ...target.linkFlags, ...(target.gpuCode ? archKey(request) : [])], nvcc);
  const cached = cachedLibraryPath(cacheDir, target.name, key);

  if (!options.force && existsSync(cached)) {
    if (printUpToDate && !options.quiet) console.log(`${displayPath(cached)} is up to date`);
    return cached;
  }

  const started = performance.now();
  const archs = resolveArchs(request);
  const gencode = target.gpuCode ? gencodeFlags(archs) : [];
  const description = target.gpuCode ? describeArchs(archs) : "the host";
  const folder = makeBuildFolder(cacheDir);
  options.onBuild?.(description);
  try {
    const built = join(folder.path, `${target.name}.so`);
    const warnings = await compile(target, nvccPath, files, gencode, folder.path, built, options.signal);
    installLibrary(built, cached, cacheDir, target.name);
    installHeaders(ROOT, target.headers ?? [], cacheDir);
    if (warnings && !options.quiet) console.warn(warnings);
  } finally {
    folder.remove();
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (!options.quiet) console.log(`built ${displayPath(cached)} for ${description} in ${seconds} s`);
  return cached;
}

/** Builds libgguf_vram into the cache when it is not there; returns its absolute path. */
export function ensureNativeLibrary(options: BuildOptions = {}): Promise<string> {
  return ensureNative("libgguf_vram", options);
}

/**
 * Builds libgguf_vram_client (the C client for engines) into the cache when it is not there:
 * its path, and the folder that holds its header gguf_vram_client.h (compile with -I there).
 */
export async function ensureClientLibrary(options: BuildOptions = {}): Promise<{ library: string; includeDir: string }> {
  const library = await ensureNative("libgguf_vram_client", options);
  const cacheDir = nativeCacheDir();
  const headers = nativeTarget("libgguf_vram_client").headers ?? [];
  if (headers.some((header) => !existsSync(join(headerFolder(cacheDir), basename(header))))) installHeaders(ROOT, headers, cacheDir);
  return { library, includeDir: headerFolder(cacheDir) };
}

// ─── CLI ──────────────────────────────────────────────────────────────────────

export const BUILD_USAGE = `usage: bun run build [--native] [--force] [--quiet]

  Builds the native libraries into ${displayPath(nativeCacheDir())}
  (GGUF_VRAM_CACHE_DIR puts them elsewhere); done on first use anyway.

  --native  only for this machine's GPUs (nvidia-smi)
  --force   rebuild even when the cache has them
  --quiet   print nothing but errors`;

/** The build command: exit code 0, 1 (build failed), 2 (usage) or 130 (cancelled). */
export async function buildCommand(argv: readonly string[], signal: AbortSignal, command = "bun run build"): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(BUILD_USAGE.replace("bun run build", command));
    return 0;
  }
  const unknown = argv.find((arg) => !["--native", "--force", "--quiet"].includes(arg));
  if (unknown !== undefined) {
    console.error(`error: unknown option ${unknown} (see ${command} --help)`);
    return 2;
  }
  printUpToDate = true;
  const quiet = argv.includes("--quiet");
  try {
    for (const target of NATIVE_TARGETS as readonly NativeTarget[]) {
      if (target.optional && !existsSync(join(ROOT, target.sourceDir))) continue;
      await ensureNative(target.name as TargetName, {
        native: argv.includes("--native") || undefined,
        force: argv.includes("--force"),
        quiet,
        signal,
        onBuild: (archs) => quiet || console.log(`building ${target.name} for ${archs}…`),
      });
    }
    return 0;
  } catch (error) {
    if (!(error instanceof NativeBuildError)) throw error;
    console.error(error.exitCode === 130 ? `cancelled: ${error.hint}` : `error: ${error.message} — ${error.hint}`);
    return error.exitCode;
  }
}

if (import.meta.main) {
  const controller = new AbortController();
  let interrupts = 0;
  process.on("SIGINT", () => (++interrupts > 1 ? process.exit(130) : controller.abort()));
  process.on("SIGTERM", () => controller.abort());
  process.exit(await buildCommand(process.argv.slice(2), controller.signal));
}
