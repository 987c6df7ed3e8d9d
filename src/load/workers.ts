// Upload workers and their supervision: each worker's thread, its state, and
// what happens when it fails to start or dies. Scheduling uploads onto the
// workers that are ready is the pool's (pool.ts).
//
// States: a worker is "starting" (its thread creates the CUDA context and
// registers its pinned ring), then "ready", or "broken" when its start failed
// (the cause is kept, typed, for a load that finds no usable worker); a broken
// worker is started again after a backoff (0.1 s, doubling, at most 30 s), at
// the next upload that asks for revivals. A ready worker that dies (an uncaught
// exception, terminate(), its thread ending) fails what it was running and is
// started again at once.
//
// A dead worker's ring, and the arena it was writing, must not be freed while
// the thread may still be inside a native call. What Bun 1.4.4 does on
// terminate() (test/worker-lifetime.test.ts shows it): native code runs on —
// the `close` event comes only after the call returned — but a blocking system
// call in it is interrupted by a signal (EINTR; the library's reads retry). So
// as not to rest on that ordering, every native call of a worker goes through
// its gate (cuda/gguf_vram.h): release() waits, polling, until the gate is idle
// and closes it for good; only then is the ring freed and what the thread owed
// failed (after which the caller may free the arena).

import type { Pointer } from "bun:ffi";
import { SHARE_ENV } from "node:worker_threads";
import { CudaError, Stager, type CudaErrorCode } from "../cuda/index.ts";
import { LoadError, toLoadError } from "./errors.ts";
import type { FromWorker, ToWorker, WorkerErrorData } from "./worker-protocol.ts";

export type WorkerState = "starting" | "ready" | "broken" | "dead";

export interface WorkerSettings {
  readonly libraryPath: string;
  readonly slots: number;
  readonly slotBytes: number;
  readonly hugePages?: boolean;
  /** The worker script (tests substitute one). */
  readonly workerUrl?: URL;
}

const DEFAULT_WORKER = new URL("./upload-worker.ts", import.meta.url);
const GATE_IDLE = 0;
const GATE_INSIDE = 1;
const GATE_RETIRED = 2;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 30_000;

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

/** A worker error as the main thread rebuilds it: the library's errors keep their code, for toLoadError. */
function fromWorkerError(e: WorkerErrorData, path: string): LoadError {
  if (e.name === "CudaError") return toLoadError(new CudaError(e.code as CudaErrorCode, 0, e.cudaError ?? 0, e.message, e.hint || undefined, e.osError ?? 0), path);
  if (e.name === "LoadError") return new LoadError(e.code as LoadError["code"], e.message, e.hint);
  return toLoadError(new Error(e.message), path);
}

/**
 * Waits until the thread of `gate` is outside every native call, then closes
 * the gate for good: from then on that thread can touch nothing. Never blocks
 * the event loop. (A fresh thread gets a fresh gate: a retired one never reopens.)
 */
export async function retire(gate: Int32Array): Promise<void> {
  for (let waits = 0; Atomics.compareExchange(gate, 0, GATE_IDLE, GATE_RETIRED) === GATE_INSIDE; waits++) {
    await Bun.sleep(Math.min(10, 1 + waits));
  }
}

/** One int32 or one uint64 of shared memory. */
const sharedI32 = () => new Int32Array(new SharedArrayBuffer(4));
const sharedU64 = () => new BigUint64Array(new SharedArrayBuffer(8));

// ─── one worker's thread ──────────────────────────────────────────────────────

interface Pending {
  readonly expect: FromWorker["type"];
  readonly path: string;
  readonly resolve: (m: FromWorker) => void;
  readonly reject: (e: Error) => void;
}

/** One thread and the replies it owes: exactly one per request, in order, or a WorkerDied for each once it is gone. */
export class WorkerLink {
  private readonly worker: Worker;
  /** This thread's gate, and where its ring's handle is published (0n: none). */
  readonly gate = sharedI32();
  readonly ring = sharedU64();
  private readonly pending: Pending[] = [];
  private why: string | null = null;
  private ended = false;

  constructor(
    url: URL,
    readonly id: number,
    readonly device: number,
    /** Called once the thread is gone, before what it owed is failed: it retires the gate and frees the ring. */
    private readonly onGone: (link: WorkerLink) => Promise<void>,
  ) {
    // Bun gives a Worker the environment the process started with; share the live one instead.
    this.worker = new Worker(url, { env: SHARE_ENV });
    this.worker.addEventListener("message", (e: MessageEvent<FromWorker>) => this.settle(e.data));
    this.worker.addEventListener("error", (e: Event) => {
      // An uncaught exception: the thread is ending (or must). Its close event settles what it owed.
      this.why ??= firstLine((e as ErrorEvent).message) ?? "an uncaught exception";
      this.worker.terminate();
    });
    this.worker.addEventListener("close", (e: Event) => void this.end((e as CloseEvent).code));
  }

  /** False from the moment the thread is known to be ending. */
  get alive(): boolean {
    return !this.ended;
  }

  request<T extends FromWorker["type"]>(message: ToWorker, expect: T, path = ""): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.ended) return reject(new WorkerDied(this.id, this.why ?? "it had ended", false));
      this.pending.push({ expect, path, resolve: resolve as (m: FromWorker) => void, reject });
      this.worker.postMessage(message);
    });
  }

  /** Ends the thread; what it still owed fails as if it had died. */
  terminate(why = "it was terminated"): void {
    this.why ??= why;
    this.worker.terminate();
  }

  private settle(m: FromWorker): void {
    const p = this.pending.shift();
    if (!p) return;
    if (m.type === "error") p.reject(fromWorkerError(m.error, p.path));
    else if (m.type === p.expect) p.resolve(m);
    else p.reject(new LoadError("UPLOAD_FAILED", `upload worker ${this.id} answered ${m.type}, expected ${p.expect}`, "this is a bug in gguf-vram; please report it"));
  }

  private async end(code: number | undefined): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    const why = this.why ?? `it exited${code ? ` with code ${code}` : ""}`;
    await this.onGone(this);
    this.pending.splice(0).forEach((p, i) => p.reject(new WorkerDied(this.id, why, i === 0)));
  }
}

function firstLine(message: string | undefined): string | undefined {
  if (!message) return undefined;
  const lines = message.split("\n").map((l) => l.trim());
  return (lines.find((l) => l.startsWith("error:"))?.slice(6).trim() ?? lines.find((l) => l !== "")) || undefined;
}

// ─── supervision ──────────────────────────────────────────────────────────────

interface Supervised {
  readonly id: number;
  readonly device: number;
  state: WorkerState;
  link: WorkerLink | null;
  /** Why its last start failed (state "broken"). */
  cause: LoadError | null;
  failures: number;
  /** When a broken worker may be started again (performance.now()). */
  retryAt: number;
  /** Settles when the start in progress has. */
  starting: Promise<void> | null;
  initMs: number;
}

/** Every worker of a pool, by id: `perDevice` for each device, in order. */
export class WorkerGroup {
  private readonly workers: Supervised[];
  private closed = false;

  constructor(
    private readonly settings: WorkerSettings,
    devices: readonly number[],
    perDevice: number,
  ) {
    const n = devices.length * perDevice;
    this.workers = Array.from({ length: n }, (_, id) => ({ id, device: devices[Math.floor(id / perDevice)]!, state: "starting", link: null, cause: null, failures: 0, retryAt: 0, starting: null, initMs: 0 }));
    for (const w of this.workers) this.start(w);
  }

  /** Resolves once no worker is starting; the value is the slowest start in ms. */
  async settled(): Promise<number> {
    for (let busy = this.workers.filter((w) => w.starting); busy.length > 0; busy = this.workers.filter((w) => w.starting)) {
      await Promise.all(busy.map((w) => w.starting));
    }
    return Math.max(0, ...this.workers.map((w) => w.initMs));
  }

  /** Starts again every broken worker whose backoff has passed, and waits for all starts to settle. */
  async revive(): Promise<void> {
    const now = performance.now();
    for (const w of this.workers) if (w.state === "broken" && w.retryAt <= now && !this.closed) this.start(w);
    await this.settled();
  }

  /** The ready workers of `device`. */
  ready(device: number): WorkerLink[] {
    return this.workers.filter((w) => w.device === device && w.state === "ready" && w.link?.alive).map((w) => w.link!);
  }

  /** Every ready worker, of any device. */
  allReady(): WorkerLink[] {
    return this.workers.filter((w) => w.state === "ready" && w.link?.alive).map((w) => w.link!);
  }

  /** Why `device` has no ready worker, as a typed error the caller can act on. */
  noWorkerError(device: number): LoadError {
    const broken = this.workers.find((w) => w.device === device && w.cause);
    const cause = broken?.cause;
    if (!cause) return new LoadError("UPLOAD_FAILED", `no upload worker for device ${device} is running`, "this is a bug in gguf-vram; please report it");
    // Causes that are not the worker's (no GPU, a wrong device, no library) are the load's error as they are.
    if (cause.code === "NO_CUDA_DEVICE" || cause.code === "BAD_DEVICE" || cause.code === "NATIVE_LIBRARY") return cause;
    const wait = Math.max(0, (broken!.retryAt - performance.now()) / 1000);
    return new LoadError(cause.code, `no upload worker for device ${device} could start: ${cause.message}`, `${cause.hint} (the loader starts its workers again from the next load on, in ${wait.toFixed(1)} s at the earliest)`, { cause });
  }

  /** Each worker's state, by id (tests, diagnostics). */
  states(): WorkerState[] {
    return this.workers.map((w) => w.state);
  }

  /** Ends worker `id` at once, as a crash would (tests). */
  terminate(id: number): void {
    this.workers[id]?.link?.terminate();
  }

  /** Ends every worker: each closes its own ring; what a dead one left is freed here. */
  async close(): Promise<unknown[]> {
    this.closed = true;
    await this.settled();
    const errors: unknown[] = [];
    const closes = await Promise.allSettled(this.workers.map((w) => (w.link?.alive ? w.link.request({ type: "close" }, "closed") : Promise.resolve())));
    closes.forEach((r) => r.status === "rejected" && !(r.reason instanceof WorkerDied) && errors.push(r.reason));
    for (const w of this.workers) {
      if (w.link) {
        w.link.terminate("the loader was closed");
        await release(w.link);
      }
      w.state = "dead";
    }
    return errors;
  }

  private start(w: Supervised): void {
    w.state = "starting";
    w.cause = null;
    const link = new WorkerLink(this.settings.workerUrl ?? DEFAULT_WORKER, w.id, w.device, (gone) => this.gone(w, gone));
    w.link = link;
    const init: ToWorker = { type: "init", libraryPath: this.settings.libraryPath, id: w.id, device: w.device, slots: this.settings.slots, slotBytes: this.settings.slotBytes, hugePages: this.settings.hugePages ?? false, gate: link.gate, ring: link.ring };
    w.starting = link.request(init, "ready").then(
      (m) => {
        w.state = "ready";
        w.failures = 0;
        w.initMs = m.initMs;
      },
      (e: unknown) => this.broke(w, link, toLoadError(e)),
    );
    void w.starting.finally(() => {
      if (w.link === link) w.starting = null;
    });
  }

  /** A start failed: keep the cause, end the thread, and wait out a backoff before the next try. */
  private async broke(w: Supervised, link: WorkerLink, cause: LoadError): Promise<void> {
    w.failures++;
    w.retryAt = performance.now() + Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (w.failures - 1));
    link.terminate("its start failed");
    await release(link);
    w.cause = cause;
    w.state = "broken";
  }

  /** The thread of `link` is gone and retired: free its ring, and start a fresh one if it had been ready. */
  private async gone(w: Supervised, link: WorkerLink): Promise<void> {
    await release(link);
    if (w.link !== link || w.state !== "ready") return; // a failed start: broke() decides
    w.state = "dead";
    if (!this.closed) this.start(w);
  }
}

/** Retires a thread's gate, then frees the ring it published, if any. Idempotent. */
export async function release(link: WorkerLink): Promise<void> {
  await retire(link.gate);
  const handle = Atomics.exchange(link.ring, 0, 0n);
  if (!handle) return;
  try {
    Stager.freeHandle(Number(handle) as Pointer);
  } catch {
    // gv_stager_free frees the ring even when draining its stream reports an error
  }
}
