// A pool of upload workers, each with its own pinned ring. Starting the pool
// creates the CUDA context (in a worker, so the main thread can parse the file
// meanwhile) and registers the rings; an upload hands each worker a run of
// consecutive spans. With workers = 0 the main thread does the work itself.

import type { Pointer } from "bun:ffi";
import { Stager } from "../cuda/index.ts";
import { LoadError, toLoadError } from "./errors.ts";
import type { UploadSpan } from "./plan.ts";
import { newSignals, packSpans, runSpans, type Schedule, type UploadSignals } from "./spans.ts";
import type { FromWorker, ToWorker, WorkerErrorData } from "./worker-protocol.ts";

export interface PoolOptions {
  readonly libraryPath: string;
  readonly device: number;
  /** Upload threads; 0 runs the upload on the calling thread. */
  readonly workers: number;
  /** Pinned slots per worker (the ring depth). */
  readonly slots: number;
  readonly slotBytes: number;
  readonly schedule: Schedule;
}

export interface UploadStats {
  readonly bytes: number;
  readonly ms: number;
}

function fromWorkerError(e: WorkerErrorData): LoadError {
  return new LoadError(e.code as LoadError["code"], e.message, e.hint, { cause: e.detail ? new Error(e.detail) : undefined });
}

/** One worker and the replies it owes: exactly one per request, in order. */
class WorkerLink {
  private readonly worker = new Worker(new URL("./upload-worker.ts", import.meta.url));
  private readonly pending: { expect: FromWorker["type"]; resolve: (m: FromWorker) => void; reject: (e: Error) => void }[] = [];

  constructor() {
    this.worker.onmessage = (e: MessageEvent<FromWorker>) => this.settle(e.data);
    this.worker.onerror = (e) => {
      const error = new LoadError("UPLOAD_FAILED", `an upload worker failed: ${e.message}`, "run with --debug and report it");
      for (const p of this.pending.splice(0)) p.reject(error);
    };
  }

  request<T extends FromWorker["type"]>(message: ToWorker, expect: T): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      this.pending.push({ expect, resolve: resolve as (m: FromWorker) => void, reject });
      this.worker.postMessage(message);
    });
  }

  terminate(): void {
    this.worker.terminate();
  }

  private settle(m: FromWorker): void {
    const p = this.pending.shift();
    if (!p) return;
    if (m.type === "error") p.reject(fromWorkerError(m.error));
    else if (m.type === p.expect) p.resolve(m);
    else p.reject(new Error(`upload worker answered ${m.type}, expected ${p.expect}`));
  }
}

export class UploadPool {
  private readonly links: WorkerLink[];
  private local: Stager | null = null;
  private closed = false;
  readonly signals: UploadSignals = newSignals();
  /** Resolves once every worker has its context and ring; the value is the slowest init in ms. */
  readonly ready: Promise<number>;

  private constructor(readonly options: PoolOptions) {
    this.links = Array.from({ length: options.workers }, () => new WorkerLink());
    const init: ToWorker = { type: "init", libraryPath: options.libraryPath, device: options.device, slots: options.slots, slotBytes: options.slotBytes, signals: this.signals };
    this.ready =
      options.workers === 0
        ? Promise.resolve(0)
        : Promise.all(this.links.map((l) => l.request(init, "ready"))).then((r) => Math.max(...r.map((x) => x.initMs)));
    this.ready.catch(() => {}); // surfaced by whoever awaits it
  }

  static start(options: PoolOptions): UploadPool {
    return new UploadPool(options);
  }

  /** Upload `spans` (in file order) into the arena; calls onProgress(bytesDone) as bytes land. */
  async upload(fd: number, path: string, arena: Pointer, spans: readonly UploadSpan[], onProgress?: (bytes: number) => void): Promise<UploadStats> {
    if (this.closed) throw new Error("the upload pool is closed");
    await this.ready;
    Atomics.store(this.signals.stop, 0, 0);
    Atomics.store(this.signals.progress, 0, 0n);
    Atomics.store(this.signals.next, 0, 0);
    const packed = packSpans(spans);
    const parties = Math.max(1, this.options.workers);
    const t = performance.now();
    if (this.options.workers === 0) {
      this.local ??= Stager.create(this.options.device, this.options.slots, this.options.slotBytes);
      const bytes = runSpans({ fd, path, stager: this.local, arena, spans: packed, parties, schedule: this.options.schedule, signals: this.signals, afterSpan: onProgress });
      onProgress?.(bytes);
      return { bytes, ms: performance.now() - t };
    }
    const timer = onProgress ? setInterval(() => onProgress(Number(Atomics.load(this.signals.progress, 0))), 50) : null;
    try {
      // Every worker must finish (or fail) before the caller may free the arena.
      const message: ToWorker = { type: "upload", fd, path, arena, spans: packed, parties, schedule: this.options.schedule };
      const results = await Promise.allSettled(this.links.map((link) => link.request(message, "done")));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw pickError(results);
      const bytes = results.reduce((n, r) => n + (r.status === "fulfilled" ? r.value.bytes : 0), 0);
      onProgress?.(bytes);
      return { bytes, ms: performance.now() - t };
    } finally {
      if (timer) clearInterval(timer);
    }
  }

  /** Asks the workers to stop at their next span (cancel). */
  stop(): void {
    Atomics.store(this.signals.stop, 0, 1);
  }

  /** Frees every ring and ends the workers. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.local?.close();
    this.local = null;
    await Promise.allSettled(this.links.map((l) => l.request({ type: "close" }, "closed")));
    for (const l of this.links) l.terminate();
  }
}

/** The root cause among failed workers: a real failure beats the "cancelled" of the others. */
function pickError(results: PromiseSettledResult<unknown>[]): LoadError {
  const errors = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => toLoadError(r.reason));
  return errors.find((e) => e.code !== "CANCELLED") ?? errors[0]!;
}
