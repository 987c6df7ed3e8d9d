// The pipeline: open → parse → registry check → plan → free-VRAM check →
// allocate → upload → (verify) → Model. The CUDA context is created in an
// upload worker while the main thread parses, so the two overlap. Whatever
// fails, the VRAM, pinned memory and file handle the load took are given back.
//
// Loads are independent: each has its own job (cursor, stop flag, byte count),
// so several may run at once on one Loader, and cancelling one stops only it.

import { cpus } from "node:os";
import type { ModelCheck } from "../arch/index.ts";
import { Arena, memInfo, Model, openCuda, nativePath, type Schedule } from "../cuda/index.ts";
import type { GgufFile } from "../gguf/index.ts";
import { cancelled, LoadError, toLoadError } from "./errors.ts";
import { checkPath, ModelFile } from "./model-file.ts";
import { planLoad, uploadSpans, type LoadPlan } from "./plan.ts";
import { UploadPool, type PoolOptions } from "./pool.ts";
import { newUploadJob } from "./spans.ts";
import { verifyAgainst, verifyModel, type VerifyReport } from "./verify.ts";

const MiB = 1024 * 1024;

/**
 * Defaults measured with `bun run bench --sweep` on an H100 host (16 cores):
 * 12 workers × 3 slots × 2 MiB moved 48.8 GB/s (89% of pinned cudaMemcpy);
 * 8 MiB slots fell to 26–29 GB/s and 32–64 MiB slots to 22–25 GB/s (small
 * slots stay in the CPU caches between the read and the DMA), and 8 workers
 * reached 43.7 GB/s. README.md has the table.
 */
export interface UploadTuning {
  /** Upload threads (0: the calling thread, one short step at a time). Default: ¾ of the CPUs, at most 12. */
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
  /**
   * Load a model the registry refuses or does not know (an architecture outside
   * it): only the GGUF format is checked, and every tensor goes to VRAM as it is.
   */
  readonly unchecked?: boolean;
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
export async function load(source: string | ModelFile, options: LoadOptions = {}): Promise<Model> {
  return (await loadModel(source, options)).model;
}

/**
 * Load, and report what was done and how long it took. `source` is a path, or a
 * ModelFile already opened (and parsed) by the caller, who keeps it open and
 * closes it; then the header is not parsed again.
 */
export async function loadModel(source: string | ModelFile, options: LoadOptions = {}): Promise<{ model: Model; report: LoadReport }> {
  if (typeof source === "string") checkPath(source); // a wrong path fails before any GPU work starts
  const pool = await startPool(options);
  try {
    return await loadWith(pool, source, options);
  } finally {
    await pool.close();
  }
}

/**
 * A pool kept across loads: the context, workers and pinned rings are set up
 * once, so each load pays only for parsing and the upload (benchmarks, servers).
 * Any number of loads may run at once: their uploads share the workers, each
 * worker taking them in the order they were asked for, and every load keeps
 * its own cursor, progress and cancellation.
 */
export class Loader {
  private constructor(private readonly pool: UploadPool) {}

  static async open(options: Omit<LoadOptions, "verify" | "onProgress" | "onPhase" | "signal"> = {}): Promise<Loader> {
    const pool = await startPool(options);
    try {
      await pool.ready;
    } catch (e) {
      await pool.close().catch(() => {});
      throw toLoadError(e);
    }
    return new Loader(pool);
  }

  /** Load on this loader's device (options.device is ignored: the loader's workers serve one device). */
  load(source: string | ModelFile, options: LoadOptions = {}): Promise<{ model: Model; report: LoadReport }> {
    return loadWith(this.pool, source, options);
  }

  /** Check a loaded model against its files again, with this loader's workers reading in parallel. */
  verify(model: Model): Promise<VerifyReport> {
    return verifyModel(model, this.pool.workers > 0 ? this.pool : null);
  }

  /** Stops the loads in flight, frees every ring and ends the workers. */
  close(): Promise<void> {
    return this.pool.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The loader's worker pool, for tests that kill a worker mid-upload. Not part of the library's API. */
export function poolOf(loader: Loader): UploadPool {
  return (loader as unknown as { pool: UploadPool }).pool;
}

async function startPool(options: LoadOptions): Promise<UploadPool> {
  const device = options.device ?? 0;
  if (!Number.isInteger(device) || device < 0) throw new LoadError("BAD_DEVICE", `device ${device} is not a device index`, "devices are numbered from 0; `nvidia-smi -L` lists them");
  try {
    await openCuda();
  } catch (e) {
    throw toLoadError(e);
  }
  const tuning: PoolOptions = { libraryPath: nativePath()!, devices: [device], ...defaultTuning(options) };
  return UploadPool.start(tuning);
}

// ─── one load ─────────────────────────────────────────────────────────────────

async function loadWith(pool: UploadPool, source: string | ModelFile, options: LoadOptions): Promise<{ model: Model; report: LoadReport }> {
  const t0 = performance.now();
  const device = pool.options.devices[0]!;
  const timings: LoadTimings = { cudaWait: 0, cudaInit: 0, parse: 0, plan: 0, allocate: 0, upload: 0, verify: 0, total: 0 };
  const phase = (p: LoadPhase) => options.onPhase?.(p);
  const abortIfCancelled = () => {
    if (options.signal?.aborted) throw cancelled();
  };
  let job: ReturnType<typeof newUploadJob> | null = null;
  const onAbort = () => job?.shared.stop();
  options.signal?.addEventListener("abort", onAbort);

  let file: ModelFile | null = typeof source === "string" ? null : source;
  let arena: Arena | null = null;
  try {
    phase("parse");
    let t = performance.now();
    file ??= await ModelFile.open(source as string, { unchecked: options.unchecked });
    timings.parse = performance.now() - t;
    abortIfCancelled();

    t = performance.now();
    const plan = planLoad(file.gguf, file.check);
    job = newUploadJob(uploadSpans(plan, pool.options.slotBytes), file.fds, Math.max(1, pool.workers), pool.options.schedule);
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
    if (options.signal?.aborted) job.shared.stop();
    await pool.upload([{ device, arena: arena.handle, job }], file.path, (done) => options.onProgress?.(done, plan.uploadBytes));
    timings.upload = performance.now() - t;
    file.checkUnchanged();
    const freeAfter = memInfoOrThrow(device).freeBytes;
    abortIfCancelled();

    const stats = file.stats;
    const files = file.paths.map((path, i) => ({ path, fileSize: stats[i]!.size, mtimeMs: stats[i]!.mtimeMs }));
    const model = new Model(arena, plan.tensors, plan.ledger, { ...files[0]!, files });
    arena = null; // the model owns it now
    if (options.verify) {
      phase("verify");
      t = performance.now();
      try {
        await verifyAgainst(model, file.fds, pool.workers > 0 ? pool : null);
      } catch (e) {
        model.close();
        throw e;
      }
      timings.verify = performance.now() - t;
    }
    timings.total = performance.now() - t0;
    const report: LoadReport = { path: file.path, gguf: file.gguf, check: file.check, plan, device, workers: pool.workers, freeBefore: vram.freeBytes, freeAfter, totalVram: vram.totalBytes, timings };
    return { model, report };
  } catch (e) {
    throw options.signal?.aborted ? cancelled() : toLoadError(e, file?.path);
  } finally {
    arena?.close();
    if (typeof source === "string") file?.close();
    options.signal?.removeEventListener("abort", onAbort);
  }
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
