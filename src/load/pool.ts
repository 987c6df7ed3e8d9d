// A pool of upload workers, a group per device, each worker with its own pinned
// ring. Starting the pool creates the CUDA context (in a worker, so the main
// thread can parse the file meanwhile) and registers the rings. An upload is a
// job per device in shared memory; every worker of that device takes runs of
// its spans until none is left. Several uploads may be in flight: each worker
// takes them in the order they came, and each has its own cursor, stop flag
// and byte count, so they never mix and one can be cancelled alone.
//
// Workers are watched: one that dies (an uncaught exception, terminate(), a
// crash of its thread) fails the upload it was running at once, with its
// message; its ring is freed from here (its handle is in shared memory) and the
// next upload starts a fresh worker in its place. With 0 workers per device the
// calling thread uploads, one short native step at a time, yielding between
// steps so a cancel is seen.

import type { Pointer } from "bun:ffi";
import { SHARE_ENV } from "node:worker_threads";
import { checksumFileStep, CudaError, Stager, uploadStep, type CudaErrorCode, type Schedule, type UploadShared } from "../cuda/index.ts";
import { LoadError, toLoadError } from "./errors.ts";
import { CHECKSUM_CHUNK, jobMessage, uploadInvariantBroken, type ChecksumJob, type UploadJob } from "./spans.ts";
import type { FromWorker, ToWorker, WorkerErrorData } from "./worker-protocol.ts";

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

/** A worker died: the request it was running fails with this; requests still queued behind it are `running: false`. */
export class WorkerDied extends LoadError {
  constructor(
    readonly worker: number,
    why: string,
    readonly running: boolean,
  ) {
    super("UPLOAD_FAILED", `upload worker ${worker} died: ${why}`, "this is a bug in gguf-vram or a crash in the GPU driver; run with --debug and report it (the next load starts a fresh worker)");
  }
}

const DEFAULT_WORKER = new URL("./upload-worker.ts", import.meta.url);

/** A worker error as the main thread rebuilds it: the library's errors keep their code, for toLoadError. */
function fromWorkerError(e: WorkerErrorData, path: string): LoadError {
  if (e.name === "CudaError") return toLoadError(new CudaError(e.code as CudaErrorCode, 0, e.cudaError ?? 0, e.message, e.hint || undefined, e.osError ?? 0), path);
  if (e.name === "LoadError") return new LoadError(e.code as LoadError["code"], e.message, e.hint);
  return toLoadError(new Error(e.message), path);
}

// ─── one worker ───────────────────────────────────────────────────────────────

interface Pending {
  readonly expect: FromWorker["type"];
  readonly path: string;
  readonly resolve: (m: FromWorker) => void;
  readonly reject: (e: Error) => void;
}

/** One worker and the replies it owes: exactly one per request, in order, or a WorkerDied for each once it is gone. */
class WorkerLink {
  private readonly worker: Worker;
  private readonly pending: Pending[] = [];
  private why: string | null = null;
  private dead = false;

  constructor(
    url: URL,
    readonly id: number,
    readonly device: number | null,
    private readonly onDeath: (link: WorkerLink) => void,
  ) {
    // Bun gives a Worker the environment the process started with; share the live one instead.
    this.worker = new Worker(url, { env: SHARE_ENV });
    this.worker.addEventListener("message", (e: MessageEvent<FromWorker>) => this.settle(e.data));
    this.worker.addEventListener("error", (e: Event) => {
      // An uncaught exception: the thread is ending (or must). Its close event settles what it owed.
      this.why ??= firstLine((e as ErrorEvent).message) ?? "an uncaught exception";
      this.worker.terminate();
    });
    this.worker.addEventListener("close", (e: Event) => this.die((e as CloseEvent).code));
  }

  get alive(): boolean {
    return !this.dead;
  }

  request<T extends FromWorker["type"]>(message: ToWorker, expect: T, path = ""): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.dead) return reject(new WorkerDied(this.id, this.why ?? "it had ended", false));
      this.pending.push({ expect, path, resolve: resolve as (m: FromWorker) => void, reject });
      this.worker.postMessage(message);
    });
  }

  /** Ends the thread; what it still owed fails as if it had died. */
  terminate(): void {
    this.why ??= "it was terminated";
    this.worker.terminate();
  }

  private settle(m: FromWorker): void {
    const p = this.pending.shift();
    if (!p) return;
    if (m.type === "error") p.reject(fromWorkerError(m.error, p.path));
    else if (m.type === p.expect) p.resolve(m);
    else p.reject(new LoadError("UPLOAD_FAILED", `upload worker ${this.id} answered ${m.type}, expected ${p.expect}`, "this is a bug in gguf-vram; please report it"));
  }

  private die(code: number | undefined): void {
    if (this.dead) return;
    this.dead = true;
    const why = this.why ?? `it exited${code ? ` with code ${code}` : ""}`;
    this.pending.splice(0).forEach((p, i) => p.reject(new WorkerDied(this.id, why, i === 0)));
    this.onDeath(this);
  }
}

function firstLine(message: string | undefined): string | undefined {
  if (!message) return undefined;
  const lines = message.split("\n").map((l) => l.trim());
  return (lines.find((l) => l.startsWith("error:"))?.slice(6).trim() ?? lines.find((l) => l !== "")) || undefined;
}

// ─── the pool ─────────────────────────────────────────────────────────────────

export class UploadPool {
  private readonly links: WorkerLink[];
  /** Each worker's ring, by worker id, published by the worker itself (0n: none). */
  private readonly handles: BigUint64Array;
  private readonly local = new Map<number, Stager>();
  /** The jobs in flight, to stop them all on close. */
  private readonly active = new Set<{ readonly shared: UploadShared }>();
  private respawns: Promise<unknown>[] = [];
  private closed = false;
  /** Resolves once every worker has its context and ring; the value is the slowest init in ms. */
  readonly ready: Promise<number>;

  private constructor(readonly options: PoolOptions) {
    const n = options.devices.length * options.workers;
    this.handles = new BigUint64Array(new SharedArrayBuffer(Math.max(8, n * 8)));
    this.links = [];
    const inits: Promise<{ initMs: number }>[] = [];
    for (let id = 0; id < n; id++) {
      const { link, ready } = this.spawn(id);
      this.links.push(link);
      inits.push(ready);
    }
    this.ready = Promise.all(inits).then((r) => Math.max(0, ...r.map((x) => x.initMs)));
    this.ready.catch(() => {}); // surfaced by whoever awaits it
  }

  static start(options: PoolOptions): UploadPool {
    return new UploadPool(options);
  }

  private spawn(id: number): { link: WorkerLink; ready: Promise<{ initMs: number }> } {
    const device = this.options.devices[Math.floor(id / this.options.workers)]!;
    const link = new WorkerLink(this.options.workerUrl ?? DEFAULT_WORKER, id, device, (dead) => this.buried(dead));
    const init: ToWorker = { type: "init", libraryPath: this.options.libraryPath, id, device, slots: this.options.slots, slotBytes: this.options.slotBytes, hugePages: this.options.hugePages ?? false, handles: this.handles };
    return { link, ready: link.request(init, "ready") };
  }

  /** A worker died: free its ring from here, and start a fresh worker for the next upload. */
  private buried(dead: WorkerLink): void {
    this.freeRing(dead.id);
    if (this.closed) return;
    const { link, ready } = this.spawn(dead.id);
    this.links[dead.id] = link;
    this.respawns.push(ready.catch(() => {}));
  }

  private freeRing(id: number): void {
    const handle = this.handles[id];
    if (!handle) return;
    this.handles[id] = 0n;
    try {
      Stager.freeHandle(Number(handle) as Pointer);
    } catch {
      // gv_stager_free frees the ring even when draining its stream reports an error
    }
  }

  /** The upload threads per device (0: the calling thread). */
  get workers(): number {
    return this.options.workers;
  }

  /** Upload every device's job at once; resolves when every byte is in VRAM, or rejects with the first real failure. */
  async upload(work: readonly DeviceJob[], path: string, onProgress?: (bytes: number, perJob: readonly number[]) => void): Promise<UploadStats> {
    if (this.closed) throw new LoadError("UPLOAD_FAILED", "the loader is closed", "open a new Loader");
    await this.ready;
    await this.settleRespawns();
    const t = performance.now();
    for (const w of work) this.active.add(w.job);
    const progress = () => work.reduce((n, w) => n + w.job.shared.bytesDone, 0);
    const report = () => onProgress?.(progress(), work.map((w) => w.job.shared.bytesDone));
    const timer = onProgress ? setInterval(report, 50) : null;
    try {
      const moved = this.options.workers === 0 ? await this.uploadHere(work, path, report) : await this.uploadInWorkers(work, path);
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

  private async uploadInWorkers(work: readonly DeviceJob[], path: string): Promise<Map<UploadJob, number>> {
    // The jobs are one load (one per device): a failure on any device stops them all.
    const stopOnFailure = (e: unknown) => {
      if (!(e instanceof WorkerDied && !e.running)) for (const w of work) w.job.shared.stop();
      throw e;
    };
    const requests = work.flatMap((w) =>
      this.links.filter((l) => l.device === w.device).map((link) => ({ w, reply: link.request({ type: "upload", arena: Number(w.arena), job: jobMessage(w.job) }, "done", path).catch(stopOnFailure) })),
    );
    // Every worker must finish (or fail) before the caller may free the arena.
    const results = await Promise.allSettled(requests.map((r) => r.reply));
    const moved = new Map<UploadJob, number>();
    const errors: LoadError[] = [];
    results.forEach((r, i) => {
      const job = requests[i]!.w.job;
      if (r.status === "fulfilled") moved.set(job, (moved.get(job) ?? 0) + r.value.bytes);
      // A worker that died before this upload reached it took none of its spans: the others did them.
      else if (!(r.reason instanceof WorkerDied && !r.reason.running)) errors.push(toLoadError(r.reason, path));
    });
    if (errors.length > 0) throw errors.find((e) => e.code !== "CANCELLED") ?? errors[0]!;
    return moved;
  }

  /** workers = 0: the calling thread uploads, a few spans per native step, yielding between steps. */
  private async uploadHere(work: readonly DeviceJob[], path: string, afterStep: () => void): Promise<Map<UploadJob, number>> {
    const moved = new Map<UploadJob, number>();
    for (const w of work) {
      let stager = this.local.get(w.device);
      if (!stager) {
        stager = Stager.create(w.device, this.options.slots, this.options.slotBytes, this.options.hugePages ?? false);
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

  /** Host checksums of file chunks (verify), spread over every worker. */
  async checksums(job: ChecksumJob, path: string): Promise<void> {
    if (this.closed) throw new LoadError("VERIFY_FAILED", "the loader is closed", "open a new Loader");
    await this.ready;
    await this.settleRespawns();
    this.active.add(job);
    try {
      if (this.options.workers === 0) return await checksumHere(job, path);
      const replies = this.links.map((l) => l.request({ type: "checksum", chunks: job.chunks, sums: job.sums, shared: job.shared.buffer }, "checksummed", path));
      const results = await Promise.allSettled(replies);
      const errors = results.flatMap((r) => (r.status === "rejected" && !(r.reason instanceof WorkerDied && !r.reason.running) ? [toLoadError(r.reason, path)] : []));
      if (errors.length > 0) throw errors.find((e) => e.code !== "CANCELLED") ?? errors[0]!;
      if (job.shared.nextSpan < job.first.at(-1)!) throw new LoadError("VERIFY_FAILED", "verify could not read every tensor: its workers died", "load again");
    } finally {
      this.active.delete(job);
    }
  }

  private async settleRespawns(): Promise<void> {
    while (this.respawns.length > 0) await Promise.all(this.respawns.splice(0));
  }

  /** Ends worker `id` at once, as a crash would (tests: a worker killed mid-upload). */
  terminateWorker(id: number): void {
    this.links[id]?.terminate();
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
    await Promise.allSettled(this.respawns);
    const closes = await Promise.allSettled(this.links.map((l) => l.request({ type: "close" }, "closed")));
    closes.forEach((r) => r.status === "rejected" && !(r.reason instanceof WorkerDied) && errors.push(r.reason));
    for (const l of this.links) l.terminate();
    // Rings whose worker could not close them (it died, or failed): free them here.
    for (let id = 0; id < this.handles.length; id++) this.freeRing(id);
    if (errors.length > 0) throw toLoadError(errors[0]);
  }
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
