// Messages between the main thread and an upload worker. A worker answers each
// request with exactly one reply, in order.

import type { UploadJobMessage } from "./spans.ts";

export interface WorkerInit {
  readonly type: "init";
  readonly libraryPath: string;
  /** The worker's index in the pool (its claims on spans are id + 1). */
  readonly id: number;
  /** The CUDA device of its ring; null for a worker that only checksums files (no context, no ring). */
  readonly device: number | null;
  readonly slots: number;
  readonly slotBytes: number;
  /** The ring in 2 MiB transparent huge pages. */
  readonly hugePages: boolean;
  /** This thread's gate (gguf_vram.h), in shared memory: every native call of the worker passes it. */
  readonly gate: Int32Array;
  /** Where the native call that creates the ring publishes its handle, so the pool can free it if the thread dies. */
  readonly ring: BigUint64Array;
}

export interface WorkerUpload {
  readonly type: "upload";
  /** The arena's native handle (same process, so valid in every thread). */
  readonly arena: number;
  readonly job: UploadJobMessage;
}

export interface WorkerChecksum {
  readonly type: "checksum";
  readonly chunks: BigUint64Array;
  readonly sums: BigUint64Array;
  readonly shared: SharedArrayBuffer;
}

export type ToWorker = WorkerInit | WorkerUpload | WorkerChecksum | { readonly type: "close" } | { readonly type: "crash"; readonly message: string };

/** An error crossing the thread boundary: enough to rebuild a LoadError. */
export interface WorkerErrorData {
  readonly name: string;
  readonly code: string;
  readonly message: string;
  readonly hint: string;
  /** For the library's errors: the cudaError_t and errno behind them. */
  readonly cudaError?: number;
  readonly osError?: number;
}

export type FromWorker =
  | { readonly type: "ready"; readonly initMs: number }
  | { readonly type: "done"; readonly bytes: number; readonly ms: number }
  | { readonly type: "checksummed" }
  | { readonly type: "closed" }
  | { readonly type: "error"; readonly error: WorkerErrorData };
