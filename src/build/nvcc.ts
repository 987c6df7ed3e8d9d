// nvcc: where it is, which version it is, the GPU architectures to compile for,
// and running it so that a cancel stops every process it started.

import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { cancelledBuild, NativeBuildError, NVCC_INSTALL_HINT } from "./errors.ts";

// ─── finding nvcc ─────────────────────────────────────────────────────────────

/** nvcc's path: $NVCC, else the first found on PATH, in $CUDA_HOME/bin, $CUDA_PATH/bin, then `fallbacks`. */
export function findNvcc(env: Record<string, string | undefined> = process.env, fallbacks = ["/usr/local/cuda/bin/nvcc"]): string {
  if (env.NVCC) {
    if (existsSync(env.NVCC)) return env.NVCC;
    throw new NativeBuildError(`NVCC is set to ${env.NVCC}, which does not exist`, `unset NVCC or point it at nvcc; ${NVCC_INSTALL_HINT}`);
  }
  const candidates = [
    Bun.which("nvcc", { PATH: env.PATH ?? "" }),
    env.CUDA_HOME ? join(env.CUDA_HOME, "bin", "nvcc") : null,
    env.CUDA_PATH ? join(env.CUDA_PATH, "bin", "nvcc") : null,
    ...fallbacks,
  ];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  throw new NativeBuildError(
    `nvcc was not found (looked at $NVCC, PATH, $CUDA_HOME/bin, $CUDA_PATH/bin and ${fallbacks.join(", ") || "nowhere else"}): the native CUDA library cannot be built`,
    NVCC_INSTALL_HINT,
  );
}

// ─── its version ──────────────────────────────────────────────────────────────

/** nvcc's --version output, remembered with the size and time of nvcc's file. */
export interface NvccVersion {
  path: string;
  size: number;
  mtimeMs: number;
  version: string;
}

/** nvcc's version; `remembered` is reused while nvcc's file is unchanged (it saves a process per run). */
export function nvccVersion(path: string, remembered: NvccVersion | null): NvccVersion {
  const real = realpathSync(path);
  const stat = statSync(real);
  if (remembered && remembered.path === real && remembered.size === stat.size && remembered.mtimeMs === stat.mtimeMs) return remembered;
  const run = Bun.spawnSync([path, "--version"], { stdout: "pipe", stderr: "pipe" });
  if (run.exitCode !== 0) throw new NativeBuildError(`${path} --version failed: ${run.stderr.toString().trim()}`, NVCC_INSTALL_HINT);
  return { path: real, size: stat.size, mtimeMs: stat.mtimeMs, version: run.stdout.toString().trim() };
}

export function readRememberedVersion(file: string): NvccVersion | null {
  try {
    const value = JSON.parse(readFileSync(file, "utf8")) as Partial<NvccVersion>;
    return typeof value.path === "string" && typeof value.version === "string" ? (value as NvccVersion) : null;
  } catch {
    return null;
  }
}

// ─── GPU architectures ────────────────────────────────────────────────────────

const DEFAULT_ARCHS = ["80", "86", "89", "90"];

export interface Archs {
  /** What was asked for: "default", "native" or e.g. "86,90". */
  request: string;
  archs: string[];
  /** PTX of the newest, which newer GPUs compile at load time. */
  ptx: boolean;
  /** Why the archs are not what was asked for. */
  note?: string;
}

/** "9.0", "90", "sm_90" → "90". */
function parseArch(value: string): string | null {
  const m = /^(?:sm_|compute_)?(\d{1,2})\.?(\d)$/.exec(value.trim());
  return m ? `${m[1]}${m[2]}` : null;
}

function sortedUnique(archs: string[]): string[] {
  return [...new Set(archs)].sort((a, b) => Number(a) - Number(b));
}

function detectArchs(): string[] | null {
  const smi = Bun.which("nvidia-smi");
  if (!smi) return null;
  try {
    const run = Bun.spawnSync([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], { stdout: "pipe", stderr: "pipe" });
    if (run.exitCode !== 0) return null;
    const archs = run.stdout.toString().split("\n").filter((line) => line.trim() !== "").map(parseArch);
    if (archs.length === 0 || archs.some((arch) => arch === null)) return null;
    return sortedUnique(archs as string[]);
  } catch {
    return null;
  }
}

/** "default", "native" or the GGUF_VRAM_CUDA_ARCH list. */
export function archRequest(native: boolean | undefined): string {
  const env = (process.env.GGUF_VRAM_CUDA_ARCH ?? "").trim();
  return native ? "native" : env === "" ? "default" : env;
}

/**
 * What the cache key holds for a request: the -gencode flags, except for
 * "native", which is keyed on this host's name so that checking never runs
 * nvidia-smi, and a cache shared by several hosts keeps one build per host.
 */
export function archKey(request: string): string[] {
  return request === "native" ? [`native@${hostname()}`] : gencodeFlags(resolveArchs(request));
}

/** The archs of a request; only "native" runs nvidia-smi. */
export function resolveArchs(request: string): Archs {
  if (request === "default") return { request, archs: DEFAULT_ARCHS, ptx: true };
  if (request === "native") {
    const detected = detectArchs();
    return detected ? { request, archs: detected, ptx: false } : { request, archs: DEFAULT_ARCHS, ptx: true, note: "no GPU detected" };
  }
  const archs = request.split(/[\s,;]+/).filter((item) => item !== "").map(parseArch);
  if (archs.length === 0 || archs.some((arch) => arch === null)) {
    throw new NativeBuildError(
      `GGUF_VRAM_CUDA_ARCH=${request} is not a list of compute capabilities`,
      "use e.g. GGUF_VRAM_CUDA_ARCH=90, GGUF_VRAM_CUDA_ARCH=86,90 or GGUF_VRAM_CUDA_ARCH=native, or unset it",
    );
  }
  return { request, archs: sortedUnique(archs as string[]), ptx: false };
}

export function gencodeFlags(archs: Archs): string[] {
  const flags = archs.archs.flatMap((arch) => ["-gencode", `arch=compute_${arch},code=sm_${arch}`]);
  const newest = archs.archs[archs.archs.length - 1];
  if (archs.ptx && newest) flags.push("-gencode", `arch=compute_${newest},code=compute_${newest}`);
  return flags;
}

export function describeArchs(archs: Archs): string {
  return archs.archs.map((arch) => `sm_${arch}`).join(" ") + (archs.ptx ? " + PTX" : "") + (archs.note ? ` (${archs.note})` : "");
}

// ─── running it ───────────────────────────────────────────────────────────────

/** The commands running now, killed with what they started when the process exits mid-build. */
const running = new Set<number>();
process.on("exit", () => {
  for (const pid of running) killTree(pid);
});

/**
 * Kills `pid` and every process it started (nvcc runs cicc, ptxas and the host
 * compiler), found through /proc. They stay in this process group, so a Ctrl-C
 * at the terminal reaches them all too, also when this process has no handler.
 */
function killTree(pid: number): void {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // it ended while we looked
    }
  }
  const tree: number[] = [];
  for (const queue = [pid]; queue.length > 0; ) {
    const next = queue.pop()!;
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  for (const member of tree) {
    try {
      process.kill(member, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/**
 * Runs `command` in `cwd` with `temporary` as its TMPDIR (nvcc and the host
 * compiler write their intermediate files there); a cancel kills it and every
 * process it started. Returns its output.
 */
export async function runTool(command: string[], cwd: string, temporary: string, signal?: AbortSignal): Promise<{ ok: boolean; output: string }> {
  if (signal?.aborted) throw cancelledBuild();
  const env = { ...process.env, TMPDIR: temporary, TMP: temporary, TEMP: temporary };
  const child = Bun.spawn(command, { cwd, env, stdout: "pipe", stderr: "pipe" });
  running.add(child.pid);
  const kill = () => killTree(child.pid);
  signal?.addEventListener("abort", kill);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    if (signal?.aborted) throw cancelledBuild();
    return { ok: code === 0, output: (stdout + stderr).trim() };
  } finally {
    signal?.removeEventListener("abort", kill);
    running.delete(child.pid);
  }
}
