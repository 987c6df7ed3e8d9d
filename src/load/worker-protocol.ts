// Messages between the main thread and an upload worker.

import type { PackedSpans, Schedule, UploadSignals } from "./spans.ts";

export interface WorkerInit {
  readonly type: "init";
  readonly libraryPath: string;
  readonly device: number;
  readonly slots: number;
  readonly slotBytes: number;
  readonly signals: UploadSignals;
}

export interface WorkerUpload {
  readonly type: "upload";
  readonly fd: number;
  readonly path: string;
  /** The arena's native handle (same process, so valid in every thread). */
  readonly arena: number;
  /** Every span of the load, in shared memory; workers take them from signals.next. */
  readonly spans: PackedSpans;
  readonly parties: number;
  readonly schedule: Schedule;
}

export type ToWorker = WorkerInit | WorkerUpload | { readonly type: "close" };

/** An error crossing the thread boundary: enough to rebuild a LoadError. */
export interface WorkerErrorData {
  readonly name: string;
  readonly code: string;
  readonly message: string;
  readonly hint: string;
  /** The underlying error's message (the library's, with file and line), for --debug. */
  readonly detail?: string;
}

export type FromWorker =
  | { readonly type: "ready"; readonly initMs: number }
  | { readonly type: "done"; readonly bytes: number; readonly ms: number }
  | { readonly type: "closed" }
  | { readonly type: "error"; readonly error: WorkerErrorData };
