// The pipeline: open → parse → registry check → plan → free-VRAM check →
// allocate → upload → (verify) → Model. The CUDA context is created in an
// upload worker while the main thread parses, so the two overlap. Whatever
// fails, the VRAM, pinned memory and file handle the load took are given back.

import { closeSync, fstatSync, openSync, statSync, type Stats } from "node:fs";
import { cpus } from "node:os";
import { checkModel, type ModelCheck } from "../arch/index.ts";
import { Arena, memInfo, Model, openCuda, nativePath } from "../cuda/index.ts";
import { readGguf, type GgufFile } from "../gguf/index.ts";
import { cancelled, LoadError, modelError, toLoadError } from "./errors.ts";
import { planLoad, uploadSpans, type LoadPlan } from "./plan.ts";
import { UploadPool, type PoolOptions } from "./pool.ts";
import type { Schedule } from "./spans.ts";
import { verifyModel } from "./verify.ts";

const MiB = 1024 * 1024;

/**
 * Defaults measured with `bun run bench --sweep` on an H100 host (16 cores):
 * 12 workers × 3 slots × 2 MiB moved 48.8 GB/s (89% of pinned cudaMemcpy);
 * 8 MiB slots fell to 26–29 GB/s and 32–64 MiB slots to 22–25 GB/s (small
 * slots stay in the CPU caches between the read and the DMA), and 8 workers
 * reached 43.7 GB/s. README.md has the table.
 */
export interface UploadTuning {
  /** Upload threads (0: the calling thread). Default: ¾ of the CPUs, at most 12. */
  readonly workers?: number;
  /** Pinned slots per worker (the ring depth). Default 3. */
  readonly slots?: number;
  /** Bytes per slot. Default 2 MiB. */
  readonly slotBytes?: number;
  /** How workers split the spans (see spans.ts). Default "tapered". */
  readonly schedule?: Schedule;
}

export interface LoadOptions extends UploadTuning {
  /** CUDA device index. Default 0. */
  readonly device?: number;
  /** Check every tensor's VRAM against the file (GPU and host checksums). */
  readonly verify?: boolean;
  /** Called as bytes land in VRAM. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Called when a phase starts, for spinners. */
  readonly onPhase?: (phase: LoadPhase) => void;
  readonly signal?: AbortSignal;
  /** Skip the free-VRAM pre-check, so an oversized arena fails in cudaMalloc itself (for tests). */
  readonly skipVramCheck?: boolean;
}

export type LoadPhase = "cuda" | "parse" | "allocate" | "upload" | "verify";

export interface LoadTimings {
  /** Waiting for the CUDA context and the rings, after parsing (0 when fully overlapped). */
  cudaWait: number;
  /** Context creation and ring registration in the slowest worker (overlapped with parsing). */
  cudaInit: number;
  parse: number;
  plan: number;
  allocate: number;
  upload: number;
  verify: number;
  total: number;
}

export interface LoadReport {
  readonly path: string;
  readonly gguf: GgufFile;
  readonly check: ModelCheck;
  readonly plan: LoadPlan;
  readonly device: number;
  readonly workers: number;
  /** cudaMemGetInfo free bytes just before allocating and just after the upload. */
  readonly freeBefore: number;
  readonly freeAfter: number;
  readonly totalVram: number;
  readonly timings: LoadTimings;
}

export function defaultTuning(t: UploadTuning = {}): Required<UploadTuning> {
  return { workers: t.workers ?? Math.max(1, Math.min(12, Math.round(cpus().length * 0.75))), slots: t.slots ?? 3, slotBytes: t.slotBytes ?? 2 * MiB, schedule: t.schedule ?? "tapered" };
}

/** Load a GGUF model into VRAM and return the model handle (close it to free the VRAM). */
export async function load(path: string, options: LoadOptions = {}): Promise<Model> {
  return (await loadModel(path, options)).model;
}

/** Load, and report what was done and how long it took. */
export async function loadModel(path: string, options: LoadOptions = {}): Promise<{ model: Model; report: LoadReport }> {
  checkPath(path); // a wrong path fails before any GPU work starts
  const pool = await startPool(options);
  try {
    return await loadWith(pool, path, options);
  } finally {
    await pool.close();
  }
}

/**
 * A pool kept across loads: the context, workers and pinned rings are set up
 * once, so each load pays only for parsing and the upload (benchmarks, servers).
 */
export class Loader {
  private constructor(private readonly pool: UploadPool) {}

  static async open(options: Omit<LoadOptions, "verify" | "onProgress" | "onPhase"> = {}): Promise<Loader> {
    const pool = await startPool(options);
    try {
      await pool.ready;
    } catch (e) {
      await pool.close();
      throw toLoadError(e);
    }
    return new Loader(pool);
  }

  load(path: string, options: LoadOptions = {}): Promise<{ model: Model; report: LoadReport }> {
    return loadWith(this.pool, path, { ...options, device: this.pool.options.device });
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function startPool(options: LoadOptions): Promise<UploadPool> {
  const device = options.device ?? 0;
  if (!Number.isInteger(device) || device < 0) throw new LoadError("BAD_DEVICE", `device ${device} is not a device index`, "devices are numbered from 0; `nvidia-smi -L` lists them");
  try {
    await openCuda();
  } catch (e) {
    throw toLoadError(e);
  }
  const tuning: PoolOptions = { libraryPath: nativePath()!, device, ...defaultTuning(options) };
  return UploadPool.start(tuning);
}

// ─── one load ─────────────────────────────────────────────────────────────────

async function loadWith(pool: UploadPool, path: string, options: LoadOptions): Promise<{ model: Model; report: LoadReport }> {
  const t0 = performance.now();
  const device = pool.options.device;
  const timings: LoadTimings = { cudaWait: 0, cudaInit: 0, parse: 0, plan: 0, allocate: 0, upload: 0, verify: 0, total: 0 };
  const phase = (p: LoadPhase) => options.onPhase?.(p);
  const abortIfCancelled = () => {
    if (options.signal?.aborted) throw cancelled();
  };
  const onAbort = () => pool.stop();
  options.signal?.addEventListener("abort", onAbort);

  const fd = openForLoad(path);
  let arena: Arena | null = null;
  try {
    const before = fstatSync(fd);
    phase("parse");
    let t = performance.now();
    const gguf = await readGguf(path).catch((e: unknown) => Promise.reject(toLoadError(e)));
    const check = checkModel(gguf);
    if (!check.ok) throw modelError(path, check.problems);
    timings.parse = performance.now() - t;

    t = performance.now();
    const plan = planLoad(gguf, check);
    const spans = uploadSpans(plan, pool.options.slotBytes);
    timings.plan = performance.now() - t;

    phase("cuda");
    t = performance.now();
    timings.cudaInit = await pool.ready.catch((e: unknown) => Promise.reject(toLoadError(e)));
    timings.cudaWait = performance.now() - t;
    abortIfCancelled();

    phase("allocate");
    t = performance.now();
    const vram = memInfoOrThrow(device);
    if (!options.skipVramCheck) checkFreeVram(plan, vram, device);
    try {
      arena = Arena.create(device, plan.arenaBytes);
    } catch (e) {
      throw toLoadError(e);
    }
    timings.allocate = performance.now() - t;

    phase("upload");
    t = performance.now();
    await pool.upload(fd, path, arena.handle, spans, (done) => options.onProgress?.(done, plan.uploadBytes));
    timings.upload = performance.now() - t;
    checkUnchanged(path, fd, before);
    const freeAfter = memInfoOrThrow(device).freeBytes;
    abortIfCancelled();

    const model = new Model(arena, plan.tensors, plan.ledger, { path, fileSize: before.size, mtimeMs: before.mtimeMs });
    arena = null; // the model owns it now
    if (options.verify) {
      phase("verify");
      t = performance.now();
      try {
        verifyModel(model);
      } catch (e) {
        model.close();
        throw toLoadError(e);
      }
      timings.verify = performance.now() - t;
    }
    timings.total = performance.now() - t0;
    const report: LoadReport = { path, gguf, check, plan, device, workers: pool.options.workers, freeBefore: vram.freeBytes, freeAfter, totalVram: vram.totalBytes, timings };
    return { model, report };
  } catch (e) {
    throw options.signal?.aborted ? cancelled() : toLoadError(e);
  } finally {
    arena?.close();
    closeSync(fd);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

function openForLoad(path: string): number {
  checkPath(path);
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new LoadError("NOT_READABLE", `${path} cannot be opened (${(e as NodeJS.ErrnoException).code})`, "check the file's permissions");
  }
}

function checkPath(path: string): void {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new LoadError("FILE_NOT_FOUND", `${path}: no such file`, "check the path; `bun run load` with no arguments lists the models it finds");
    throw new LoadError("NOT_READABLE", `${path} cannot be read (${code})`, "check the file's permissions");
  }
  if (st.isDirectory()) throw new LoadError("IS_A_DIRECTORY", `${path} is a directory, not a GGUF file`, "pass the path of the .gguf file inside it");
  if (!st.isFile()) throw new LoadError("NOT_READABLE", `${path} is not a regular file`, "pass the path of a .gguf file");
}

function memInfoOrThrow(device: number) {
  try {
    return memInfo(device);
  } catch (e) {
    throw toLoadError(e);
  }
}

/** cudaMalloc hands out 2 MiB pages; the arena needs that much free, rounded up. */
function checkFreeVram(plan: LoadPlan, vram: { freeBytes: number; totalBytes: number }, device: number): void {
  const needed = Math.ceil(plan.arenaBytes / (2 * MiB)) * 2 * MiB;
  if (needed <= vram.freeBytes) return;
  const m = (b: number) => (b / MiB).toFixed(1);
  throw new LoadError(
    "OUT_OF_VRAM",
    `the model needs ${m(plan.arenaBytes)} MiB of VRAM; device ${device} has ${m(vram.freeBytes)} MiB free of ${m(vram.totalBytes)} MiB`,
    "free GPU memory (nvidia-smi shows which processes hold it), or pick a smaller model or another --device",
  );
}

/** The file must be the one that was parsed, unchanged, at the end of the upload. */
function checkUnchanged(path: string, fd: number, before: Stats): void {
  const now = fstatSync(fd);
  let onDisk: Stats | null = null;
  try {
    onDisk = statSync(path);
  } catch {
    // deleted during the load: the open file is still what was read
  }
  if (now.size !== before.size || now.mtimeMs !== before.mtimeMs) {
    throw new LoadError("FILE_CHANGED", `${path} was modified during the load (size ${before.size} → ${now.size})`, "make sure nothing writes the file while it loads, then load it again");
  }
  if (onDisk && (onDisk.ino !== before.ino || onDisk.dev !== before.dev)) {
    throw new LoadError("FILE_CHANGED", `${path} was replaced by another file during the load`, "load it again once the new file is complete");
  }
}
