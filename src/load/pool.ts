// A pool of upload workers, a group per device, each worker with its own pinned
// ring: the scheduling of uploads (and verify's host checksums) onto the
// workers that are ready. Starting the pool creates the CUDA context (in a
// worker, so the main thread can parse the file meanwhile) and registers the
// rings. An upload is a job per device in shared memory; every ready worker of
// that device takes runs of its spans until none is left. Several uploads may
// be in flight: each worker takes them in the order they came, and each has its
// own cursor, stop flag and byte count, so they never mix and one can be
// cancelled alone.
//
// Supervision (which workers are ready, broken or dead, restarting them, and
// freeing what a dead one held) is workers.ts's. With 0 workers per device the
// calling thread uploads, one short native step at a time, yielding between
// steps so a cancel is seen.

import type { Pointer } from "bun:ffi";
import { checksumFileStep, Stager, uploadStep, type Schedule, type UploadShared } from "../cuda/index.ts";
import { LoadError, toLoadError } from "./errors.ts";
import { CHECKSUM_CHUNK, jobMessage, uploadInvariantBroken, type ChecksumJob, type UploadJob } from "./spans.ts";
import { WorkerDied, WorkerGroup, type WorkerLink, type WorkerState } from "./workers.ts";

export { WorkerDied } from "./workers.ts";

export interface PoolOptions {
  readonly libraryPath: string;
  /** One group of workers per device, in this order. */
  readonly devices: readonly number[];
  /** Upload threads per device; 0 uploads on the calling thread. */
  readonly workers: number;
  /** Pinned slots per worker (the ring depth). */
  readonly slots: number;
  readonly slotBytes: number;
  readonly schedule: Schedule;
  /** Rings in 2 MiB transparent huge pages. */
  readonly hugePages?: boolean;
  /** The worker script (tests substitute one). */
  readonly workerUrl?: URL;
}

/** One device's part of an upload. */
export interface DeviceJob {
  readonly device: number;
  /** The arena's native handle. */
  readonly arena: Pointer;
  readonly job: UploadJob;
}

export interface UploadStats {
  readonly bytes: number;
  readonly ms: number;
}

// ─── the pool ─────────────────────────────────────────────────────────────────

export class UploadPool {
  private readonly group: WorkerGroup | null;
  private readonly local = new Map<number, Stager>();
  /** The jobs in flight, to stop them all on close. */
  private readonly active = new Set<{ readonly shared: UploadShared }>();
  private closed = false;
  /**
   * Resolves once every worker has started or failed to (the value is the
   * slowest start in ms); it never rejects: a device left without a usable
   * worker is an error of the load that needs it (requireWorkers).
   */
  readonly ready: Promise<number>;

  private constructor(readonly options: PoolOptions) {
    this.group = options.workers > 0 ? new WorkerGroup(options, options.devices, options.workers) : null;
    this.ready = this.group ? this.group.settled() : Promise.resolve(0);
  }

  static start(options: PoolOptions): UploadPool {
    return new UploadPool(options);
  }

  /** The upload threads per device (0: the calling thread). */
  get workers(): number {
    return this.options.workers;
  }

  /** Each worker's state, by id. */
  get workerStates(): readonly WorkerState[] {
    return this.group?.states() ?? [];
  }

  /**
   * Brings back broken workers whose backoff has passed, waits for every start
   * to settle, and throws the cause when one of `devices` has no ready worker.
   */
  async requireWorkers(devices: readonly number[]): Promise<void> {
    if (this.closed) throw new LoadError("CLOSED", "the loader is closed", "open a new Loader");
    if (!this.group) return;
    await this.group.revive();
    for (const d of devices) if (this.group.ready(d).length === 0) throw this.group.noWorkerError(d);
  }

  /** Upload every device's job at once; resolves when every byte is in VRAM, or rejects with the first real failure. */
  async upload(work: readonly DeviceJob[], path: string, onProgress?: (bytes: number, perJob: readonly number[]) => void): Promise<UploadStats> {
    await this.requireWorkers(work.map((w) => w.device));
    const t = performance.now();
    for (const w of work) this.active.add(w.job);
    const progress = () => work.reduce((n, w) => n + w.job.shared.bytesDone, 0);
    const report = () => onProgress?.(progress(), work.map((w) => w.job.shared.bytesDone));
    const timer = onProgress ? setInterval(report, 50) : null;
    try {
      const moved = this.group ? await this.uploadInWorkers(this.group, work, path) : await this.uploadHere(work, path, report);
      for (const w of work) {
        const broken = uploadInvariantBroken(w.job, moved.get(w.job) ?? 0);
        if (broken) throw new LoadError("UPLOAD_FAILED", `the upload to device ${w.device} broke an internal invariant: ${broken}`, "this is a bug in gguf-vram; please report it (nothing was kept)");
      }
      report();
      return { bytes: progress(), ms: performance.now() - t };
    } finally {
      if (timer) clearInterval(timer);
      for (const w of work) this.active.delete(w.job);
    }
  }

  private async uploadInWorkers(group: WorkerGroup, work: readonly DeviceJob[], path: string): Promise<Map<UploadJob, number>> {
    // The jobs are one load (one per device): a failure on any device stops them all.
    const stopOnFailure = (e: unknown) => {
      if (!(e instanceof WorkerDied && !e.running)) for (const w of work) w.job.shared.stop();
      throw e;
    };
    const requests = work.flatMap((w) =>
      group.ready(w.device).map((link) => ({ w, reply: link.request({ type: "upload", arena: Number(w.arena), job: jobMessage(w.job) }, "done", path).catch(stopOnFailure) })),
    );
    // Every worker must finish (or fail, and be retired) before the caller may free the arena.
    const results = await Promise.allSettled(requests.map((r) => r.reply));
    const moved = new Map<UploadJob, number>();
    const errors: LoadError[] = [];
    results.forEach((r, i) => {
      const job = requests[i]!.w.job;
      if (r.status === "fulfilled") moved.set(job, (moved.get(job) ?? 0) + r.value.bytes);
      // A worker that died before this upload reached it took none of its spans: the others did them.
      else if (!(r.reason instanceof WorkerDied && !r.reason.running)) errors.push(toLoadError(r.reason, path));
    });
    if (errors.length > 0) throw firstReal(errors);
    return moved;
  }

  /** workers = 0: the calling thread uploads, a few spans per native step, yielding between steps. */
  private async uploadHere(work: readonly DeviceJob[], path: string, afterStep: () => void): Promise<Map<UploadJob, number>> {
    const moved = new Map<UploadJob, number>();
    for (const w of work) {
      let stager = this.local.get(w.device);
      if (!stager) {
        try {
          stager = Stager.create(w.device, this.options.slots, this.options.slotBytes, this.options.hugePages ?? false);
        } catch (e) {
          throw toLoadError(e, path); // the next load tries again
        }
        this.local.set(w.device, stager);
      }
      const run = new Int32Array(2);
      let bytes = 0;
      try {
        for (let step = { bytes: 0, finished: false }; !step.finished; ) {
          step = uploadStep(stager, w.arena, w.job, 0, run, 4);
          bytes += step.bytes;
          afterStep();
          if (!step.finished) await new Promise((r) => setImmediate(r));
        }
      } catch (e) {
        throw toLoadError(e, path); // the step drained the stream before it threw
      }
      moved.set(w.job, bytes);
    }
    return moved;
  }

  /** Host checksums of file chunks (verify), spread over every ready worker. */
  async checksums(job: ChecksumJob, path: string): Promise<void> {
    if (this.closed) throw new LoadError("CLOSED", "the loader is closed", "open a new Loader");
    this.active.add(job);
    try {
      const links: WorkerLink[] = [];
      if (this.group) {
        await this.group.revive();
        links.push(...this.group.allReady());
      }
      if (links.length === 0) return await checksumHere(job, path);
      const replies = links.map((l) => l.request({ type: "checksum", chunks: job.chunks, sums: job.sums, shared: job.shared.buffer }, "checksummed", path));
      const results = await Promise.allSettled(replies);
      const errors = results.flatMap((r) => (r.status === "rejected" && !(r.reason instanceof WorkerDied && !r.reason.running) ? [toLoadError(r.reason, path)] : []));
      if (errors.length > 0) throw firstReal(errors);
      if (job.shared.nextSpan < job.first.at(-1)!) throw new LoadError("VERIFY_FAILED", "verify could not read every tensor: its workers died", "load again");
    } finally {
      this.active.delete(job);
    }
  }

  /** Ends worker `id` at once, as a crash would (tests: a worker killed mid-upload). */
  terminateWorker(id: number): void {
    this.group?.terminate(id);
  }

  /** Stops every upload in flight (close, or a process-wide cancel). */
  stopAll(): void {
    for (const job of this.active) job.shared.stop();
  }

  /** Frees every ring and ends the workers; frees what it can even when a part fails. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopAll();
    const errors: unknown[] = [];
    for (const stager of this.local.values()) {
      try {
        stager.close();
      } catch (e) {
        errors.push(e);
      }
    }
    this.local.clear();
    if (this.group) errors.push(...(await this.group.close()));
    if (errors.length > 0) throw toLoadError(errors[0]);
  }
}

/** The failure to report: the first that is not a CANCELLED caused by another's stop. */
function firstReal(errors: readonly LoadError[]): LoadError {
  return errors.find((e) => e.code !== "CANCELLED") ?? errors[0]!;
}

/** Host checksums on the calling thread, a few chunks per native step, yielding between steps. */
export async function checksumHere(job: ChecksumJob, path: string): Promise<void> {
  const buffer = new Uint8Array(CHECKSUM_CHUNK);
  try {
    while (!checksumFileStep(job.chunks, job.sums, job.shared, buffer, 4).finished) await new Promise((r) => setImmediate(r));
  } catch (e) {
    throw toLoadError(e, path);
  }
}
