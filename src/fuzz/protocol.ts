// What the fuzz runner (run.ts) and its worker (worker.ts) say to each other.

import type { Finding, FuzzOptions, Tally } from "./engine.ts";

export interface StartMessage {
  readonly options: FuzzOptions;
  /** The first job to run. */
  readonly from: number;
  /** Jobs not to run again (they hung a worker before). */
  readonly skip: readonly number[];
  /** Int32Array view: [job, state, heartbeat]. */
  readonly progress: SharedArrayBuffer;
}

export type WorkerMessage =
  | { readonly type: "ready" }
  | { readonly type: "batch"; readonly tally: Tally; readonly findings: readonly Finding[]; readonly next: number }
  | { readonly type: "done" };

export const PROGRESS = { job: 0, state: 1, heartbeat: 2 } as const;
export const STATE = { idle: 0, running: 1, minimizing: 2 } as const;
