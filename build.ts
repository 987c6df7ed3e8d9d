// bun build.ts [--native] [--force] [--quiet] — builds build/libgguf_vram.so from
// cuda/*.cu with nvcc, only when its sources, flags or nvcc changed. Ctrl-C
// kills nvcc and leaves no partial output. Exit codes: 0, 1 build failed,
// 2 usage, 130 cancelled.
//
// Importable: ensureNativeLibrary() returns the library's path, building it
// first when needed; when it is up to date that costs a few file reads and a hash.
//
// Targets: sm_80 sm_86 sm_89 sm_90 + compute_90 PTX (which newer GPUs JIT) by
// default; --native or GGUF_VRAM_CUDA_ARCH=native builds for the GPU nvidia-smi
// reports (falling back to the default list); GGUF_VRAM_CUDA_ARCH=90 or "86,90"
// builds exactly those. cudart is linked statically, so the library depends only
// on the driver (libcuda.so.1), which the runtime loads at the first CUDA call.

import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename, join, relative } from "node:path";

const ROOT = import.meta.dir;
const SOURCE_DIR = join(ROOT, "cuda");
const BUILD_DIR = join(ROOT, "build");
const STAMP_PATH = join(BUILD_DIR, "libgguf_vram.stamp");

/** Absolute path of the native library that ensureNativeLibrary() builds. */
export const NATIVE_LIBRARY_PATH = join(BUILD_DIR, "libgguf_vram.so");

const DEFAULT_ARCHS = ["80", "86", "89", "90"];
const COMPILE_FLAGS = ["-O3", "-std=c++17", "-Xcompiler", "-fPIC,-fvisibility=hidden,-Wall"];
const LINK_FLAGS = ["-shared", "-cudart", "static"];
const INSTALL_HINT =
  "install the CUDA toolkit (nvcc), e.g. `apt install cuda-toolkit-13-0` or from https://developer.nvidia.com/cuda-downloads, or set CUDA_HOME";

export class NativeBuildError extends Error {
  override readonly name = "NativeBuildError";
  constructor(
    message: string,
    /** What the user can do about it. */
    readonly hint: string,
    /** 130 when cancelled. */
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface BuildOptions {
  /** Build only for the GPU of this machine (nvidia-smi); default: GGUF_VRAM_CUDA_ARCH, else sm_80..sm_90 + PTX. */
  native?: boolean;
  /** Rebuild even when the stamp says the library is up to date. */
  force?: boolean;
  /** Print nothing, not even "built …" or nvcc's warnings. */
  quiet?: boolean;
  /** Stops a build in progress: nvcc is killed and its partial output removed. */
  signal?: AbortSignal;
  /** Called when a build starts (it takes several seconds), with what it builds for; not called when up to date. */
  onBuild?: (targets: string) => void;
}

// ─── nvcc ─────────────────────────────────────────────────────────────────────

interface Nvcc {
  path: string;
  version: string;
}

function findNvcc(): string {
  const explicit = process.env.NVCC;
  if (explicit) {
    if (existsSync(explicit)) return explicit;
    throw new NativeBuildError(`NVCC is set to ${explicit}, which does not exist`, `unset NVCC or point it at nvcc; ${INSTALL_HINT}`);
  }
  const candidates = [
    Bun.which("nvcc"),
    process.env.CUDA_HOME ? join(process.env.CUDA_HOME, "bin", "nvcc") : null,
    process.env.CUDA_PATH ? join(process.env.CUDA_PATH, "bin", "nvcc") : null,
    "/usr/local/cuda/bin/nvcc",
  ];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  throw new NativeBuildError(
    "nvcc was not found (looked at $NVCC, PATH, $CUDA_HOME/bin, $CUDA_PATH/bin and /usr/local/cuda/bin): the native CUDA library cannot be built",
    INSTALL_HINT,
  );
}

interface StampNvcc {
  path: string;
  size: number;
  mtimeMs: number;
  version: string;
}

/** nvcc's --version output; reused from the stamp while nvcc's file is unchanged (saves a process). */
function nvccVersion(path: string, previous: StampNvcc | null): { nvcc: Nvcc; stamp: StampNvcc } {
  const real = realpathSync(path);
  const stat = statSync(real);
  if (previous && previous.path === real && previous.size === stat.size && previous.mtimeMs === stat.mtimeMs) {
    return { nvcc: { path, version: previous.version }, stamp: previous };
  }
  const run = Bun.spawnSync([path, "--version"], { stdout: "pipe", stderr: "pipe" });
  if (run.exitCode !== 0) {
    throw new NativeBuildError(`${path} --version failed: ${run.stderr.toString().trim()}`, INSTALL_HINT);
  }
  const version = run.stdout.toString().trim();
  return { nvcc: { path, version }, stamp: { path: real, size: stat.size, mtimeMs: stat.mtimeMs, version } };
}

// ─── targets ──────────────────────────────────────────────────────────────────

interface Targets {
  /** The arch request the stamp is keyed on: "default", "native" or e.g. "86,90". */
  request: string;
  archs: string[];
  ptx: boolean;
  /** Why the targets are not what was asked for. */
  note?: string;
}

/** "9.0", "90", "sm_90" → "90". */
function parseArch(value: string): string | null {
  const m = /^(?:sm_|compute_)?(\d{1,2})\.?(\d)$/.exec(value.trim());
  return m ? `${m[1]}${m[2]}` : null;
}

function detectArchs(): string[] | null {
  const smi = Bun.which("nvidia-smi");
  if (!smi) return null;
  try {
    const run = Bun.spawnSync([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], { stdout: "pipe", stderr: "pipe" });
    if (run.exitCode !== 0) return null;
    const archs = run.stdout.toString().split("\n").filter((line) => line.trim() !== "").map(parseArch);
    if (archs.length === 0 || archs.some((arch) => arch === null)) return null;
    return [...new Set(archs as string[])].sort((a, b) => Number(a) - Number(b));
  } catch {
    return null;
  }
}

/** "default", "native" or the GGUF_VRAM_CUDA_ARCH list: what the stamp is keyed on. */
function archRequest(native: boolean | undefined): string {
  const env = (process.env.GGUF_VRAM_CUDA_ARCH ?? "").trim();
  return native ? "native" : env === "" ? "default" : env;
}

/** The targets for a request; only "native" runs nvidia-smi. */
function resolveTargets(request: string): Targets {
  if (request === "default") return { request, archs: DEFAULT_ARCHS, ptx: true };
  if (request === "native") {
    const detected = detectArchs();
    return detected ? { request, archs: detected, ptx: false } : { request, archs: DEFAULT_ARCHS, ptx: true, note: "no GPU detected" };
  }
  const items = request.split(/[\s,;]+/).filter((item) => item !== "");
  const archs = items.map(parseArch);
  if (archs.length === 0 || archs.some((arch) => arch === null)) {
    throw new NativeBuildError(
      `GGUF_VRAM_CUDA_ARCH=${request} is not a list of compute capabilities`,
      "use e.g. GGUF_VRAM_CUDA_ARCH=90, GGUF_VRAM_CUDA_ARCH=86,90 or GGUF_VRAM_CUDA_ARCH=native, or unset it",
    );
  }
  return { request, archs: [...new Set(archs as string[])].sort((a, b) => Number(a) - Number(b)), ptx: false };
}

function gencodeFlags(targets: Targets): string[] {
  const flags = targets.archs.flatMap((arch) => ["-gencode", `arch=compute_${arch},code=sm_${arch}`]);
  const newest = targets.archs[targets.archs.length - 1];
  if (targets.ptx && newest) flags.push("-gencode", `arch=compute_${newest},code=compute_${newest}`);
  return flags;
}

function describeTargets(targets: Targets): string {
  return targets.archs.map((arch) => `sm_${arch}`).join(" ") + (targets.ptx ? " + PTX" : "") + (targets.note ? ` (${targets.note})` : "");
}

// ─── the stamp ────────────────────────────────────────────────────────────────

interface Stamp {
  key: string;
  nvcc: StampNvcc;
}

function readStamp(): Stamp | null {
  try {
    const stamp = JSON.parse(readFileSync(STAMP_PATH, "utf8")) as Partial<Stamp>;
    return typeof stamp.key === "string" && stamp.nvcc ? (stamp as Stamp) : null;
  } catch {
    return null;
  }
}

function sourceFiles(): string[] {
  const files = existsSync(SOURCE_DIR) ? readdirSync(SOURCE_DIR).filter((f) => f.endsWith(".cu") || f.endsWith(".h")).sort() : [];
  if (!files.some((f) => f.endsWith(".cu"))) {
    throw new NativeBuildError(`no CUDA sources in ${SOURCE_DIR}`, "run from a complete checkout of gguf-vram");
  }
  return files;
}

/** sha256 of every source's name and bytes, the flags and nvcc's version. */
function buildKey(files: string[], flags: string[], nvcc: Nvcc): string {
  const hasher = new Bun.CryptoHasher("sha256");
  for (const file of files) hasher.update(`${file}\0`).update(readFileSync(join(SOURCE_DIR, file))).update("\0");
  hasher.update(flags.join(" ")).update("\0").update(nvcc.version);
  return hasher.digest("hex");
}

// ─── compiling ────────────────────────────────────────────────────────────────

async function run(command: string[], signal?: AbortSignal): Promise<{ ok: boolean; stderr: string }> {
  if (signal?.aborted) throw cancelledBuild();
  const child = Bun.spawn(command, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const kill = () => child.kill();
  signal?.addEventListener("abort", kill);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    if (signal?.aborted) throw cancelledBuild();
    return { ok: code === 0, stderr: (stdout + stderr).trim() };
  } finally {
    signal?.removeEventListener("abort", kill);
  }
}

function cancelledBuild(): NativeBuildError {
  return new NativeBuildError("the build of the native library was cancelled", "nothing was kept; it builds again on the next run", 130);
}

/** Compiles each .cu on its own (in parallel), then links them with static cudart; returns nvcc's warnings. */
async function compile(nvcc: Nvcc, sources: string[], gencode: string[], output: string, signal?: AbortSignal): Promise<string> {
  const objDir = join(BUILD_DIR, `.obj-${process.pid}-${Date.now()}`);
  mkdirSync(objDir, { recursive: true });
  // Also when the process exits mid-build (a second Ctrl-C): no half-built objects left behind.
  const removeObjects = () => rmSync(objDir, { recursive: true, force: true });
  process.on("exit", removeObjects);
  try {
    const cpus = availableParallelism();
    const threads = String(Math.max(1, Math.floor(cpus / sources.length)));
    const jobs = sources.map((source) => ({
      source,
      command: [nvcc.path, ...COMPILE_FLAGS, ...gencode, "--threads", threads, "-c", relative(ROOT, join(SOURCE_DIR, source)), "-o", join(objDir, `${basename(source, ".cu")}.o`)],
    }));
    const warnings: string[] = [];
    const failures: string[] = [];
    let next = 0;
    const worker = async () => {
      for (let job = jobs[next++]; job; job = jobs[next++]) {
        const result = await run(job.command, signal);
        if (!result.ok) failures.push(result.stderr || `nvcc failed on cuda/${job.source}`);
        else if (result.stderr) warnings.push(result.stderr);
      }
    };
    await Promise.all(Array.from({ length: Math.min(cpus, jobs.length) }, worker));
    if (failures.length > 0) throw new NativeBuildError(`nvcc failed:\n${failures.join("\n")}`, "fix the CUDA sources in cuda/, or report this with your nvcc version");

    const objects = jobs.map((job) => join(objDir, `${basename(job.source, ".cu")}.o`));
    const link = await run([nvcc.path, ...LINK_FLAGS, ...objects, "-o", output], signal);
    if (!link.ok) throw new NativeBuildError(`linking ${relative(ROOT, NATIVE_LIBRARY_PATH)} failed:\n${link.stderr}`, "check that the CUDA toolkit has libcudart_static.a");
    if (link.stderr) warnings.push(link.stderr);
    return warnings.join("\n");
  } finally {
    removeObjects();
    process.off("exit", removeObjects);
  }
}

// ─── API ──────────────────────────────────────────────────────────────────────

let printUpToDate = false;

/** Builds build/libgguf_vram.so when its sources, flags or nvcc changed; returns its absolute path. */
export async function ensureNativeLibrary(options: BuildOptions = {}): Promise<string> {
  const files = sourceFiles();
  const nvccPath = findNvcc();
  const stamp = readStamp();
  const { nvcc, stamp: nvccStamp } = nvccVersion(nvccPath, stamp?.nvcc ?? null);
  const request = archRequest(options.native);
  // a native build is keyed on the request, not on what nvidia-smi says, so checking never runs it
  const keyTargets = request === "native" ? ["native"] : gencodeFlags(resolveTargets(request));
  const key = buildKey(files, [...COMPILE_FLAGS, ...LINK_FLAGS, ...keyTargets], nvcc);

  if (!options.force && stamp?.key === key && existsSync(NATIVE_LIBRARY_PATH)) {
    if (printUpToDate && !options.quiet) console.log(`${relative(process.cwd(), NATIVE_LIBRARY_PATH)} is up to date`);
    return NATIVE_LIBRARY_PATH;
  }

  const started = performance.now();
  const targets = resolveTargets(request);
  const gencode = gencodeFlags(targets);
  options.onBuild?.(describeTargets(targets));
  mkdirSync(BUILD_DIR, { recursive: true });
  const temporary = `${NATIVE_LIBRARY_PATH}.${process.pid}.tmp`;
  const removeTemporary = () => rmSync(temporary, { force: true });
  process.on("exit", removeTemporary);
  try {
    const warnings = await compile(nvcc, files.filter((f) => f.endsWith(".cu")), gencode, temporary, options.signal);
    renameSync(temporary, NATIVE_LIBRARY_PATH);
    if (warnings && !options.quiet) console.warn(warnings);
  } finally {
    removeTemporary();
    process.off("exit", removeTemporary);
  }
  writeFileSync(STAMP_PATH, JSON.stringify({ key, nvcc: nvccStamp } satisfies Stamp, null, 2) + "\n");
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (!options.quiet) console.log(`built ${relative(process.cwd(), NATIVE_LIBRARY_PATH)} for ${describeTargets(targets)} in ${seconds} s`);
  return NATIVE_LIBRARY_PATH;
}

// ─── CLI ──────────────────────────────────────────────────────────────────────

if (import.meta.main) {
  const usage = "usage: bun build.ts [--native] [--force] [--quiet]";
  const args = process.argv.slice(2);
  const unknown = args.find((arg) => !["--native", "--force", "--quiet", "--help", "-h"].includes(arg));
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage);
    process.exit(0);
  }
  if (unknown !== undefined) {
    console.error(`error: unknown option ${unknown} (see bun run build --help)`);
    process.exit(2);
  }
  printUpToDate = true;
  const controller = new AbortController();
  let interrupts = 0;
  process.on("SIGINT", () => (++interrupts > 1 ? process.exit(130) : controller.abort()));
  process.on("SIGTERM", () => controller.abort());
  try {
    const quiet = args.includes("--quiet");
    await ensureNativeLibrary({ native: args.includes("--native") || undefined, force: args.includes("--force"), quiet, signal: controller.signal, onBuild: (targets) => quiet || console.log(`building ${relative(process.cwd(), NATIVE_LIBRARY_PATH)} for ${targets}…`) });
  } catch (error) {
    if (!(error instanceof NativeBuildError)) throw error;
    console.error(error.exitCode === 130 ? `cancelled: ${error.hint}` : `error: ${error.message} — ${error.hint}`);
    process.exit(error.exitCode);
  }
}
