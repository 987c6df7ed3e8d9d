// The upload loop, the same in a Worker and on the main thread: take the next
// run of spans from a cursor all workers share, read each span from the file
// straight into a pinned slot, enqueue its copies, move to the next slot; a slot
// is refilled only once its copies are done.
//
// Runs shrink as the work does: each takes 1/P of the spans left (P workers),
// so first runs are long sequential reads (what a cold disk's readahead wants)
// and the last are one span (no worker left with a tail while the others wait,
// what a warm page cache at 50 GB/s wants). Measured on an H100 host, same run:
// warm 7B at 49.3 GB/s (one contiguous share per worker: 45.8; 1/(2P) runs:
// 49.2; runs of 4 spans: 48.3), cold 0.5B at 1.7 GB/s (1.6, 1.4, 1.4).

import { readSync } from "node:fs";
import type { Pointer } from "bun:ffi";
import type { Stager } from "../cuda/index.ts";
import { cancelled, LoadError } from "./errors.ts";
import type { UploadSpan } from "./plan.ts";

/** Shared between the main thread and the workers (SharedArrayBuffer views). */
export interface UploadSignals {
  /** [0] != 0: stop at the next span (cancelled, or another worker failed). */
  readonly stop: Int32Array;
  /** [0]: bytes uploaded so far, by everyone. */
  readonly progress: BigInt64Array;
  /** [0]: the next span to take. */
  readonly next: Int32Array;
}

export function newSignals(): UploadSignals {
  return {
    stop: new Int32Array(new SharedArrayBuffer(4)),
    progress: new BigInt64Array(new SharedArrayBuffer(8)),
    next: new Int32Array(new SharedArrayBuffer(4)),
  };
}

/**
 * Spans flattened into shared memory, so every worker reads the same list with
 * no copy: span i is data[index[i]..]: file offset, bytes, piece count, then
 * (slot offset, arena offset, bytes) per piece.
 */
export interface PackedSpans {
  readonly index: Float64Array;
  readonly data: Float64Array;
}

export function packSpans(spans: readonly UploadSpan[]): PackedSpans {
  const size = spans.reduce((n, s) => n + 3 + s.pieces.length, 0);
  const index = new Float64Array(new SharedArrayBuffer(Math.max(8, spans.length * 8)), 0, spans.length);
  const data = new Float64Array(new SharedArrayBuffer(Math.max(8, size * 8)), 0, size);
  let at = 0;
  spans.forEach((s, i) => {
    index[i] = at;
    data[at] = s.fileOffset;
    data[at + 1] = s.bytes;
    data[at + 2] = s.pieces.length / 3;
    data.set(s.pieces, at + 3);
    at += 3 + s.pieces.length;
  });
  return { index, data };
}

export interface SpanRun {
  readonly fd: number;
  readonly path: string;
  readonly stager: Stager;
  readonly arena: Pointer;
  readonly spans: PackedSpans;
  /** How many runs share the cursor (the workers), which sizes the runs taken. */
  readonly parties: number;
  readonly schedule: Schedule;
  readonly signals: UploadSignals;
  /** Called after each span with the bytes uploaded so far by this run (the main-thread mode's progress). */
  readonly afterSpan?: (bytes: number) => void;
}

/**
 * How the workers split the spans: "tapered" (runs of 1/P of the spans left, the
 * default), "guided" (1/(2P) of the spans left), "chunks" (runs of 4 spans),
 * "shares" (one contiguous run per worker). The others are kept for the benchmark.
 */
export type Schedule = "guided" | "tapered" | "chunks" | "shares";

/** Claims the next run of spans: [first, end), or null when none are left. */
function claim(next: Int32Array, total: number, parties: number, schedule: Schedule): [number, number] | null {
  for (;;) {
    const first = Atomics.load(next, 0);
    if (first >= total) return null;
    const take =
      schedule === "chunks" ? 4
      : schedule === "shares" ? Math.ceil(total / parties)
      : Math.max(1, Math.ceil((total - first) / (schedule === "tapered" ? parties : 2 * parties)));
    if (Atomics.compareExchange(next, 0, first, first + take) === first) return [first, Math.min(total, first + take)];
  }
}

export function runSpans(run: SpanRun): number {
  const { stager, signals } = run;
  const { index, data } = run.spans;
  const slots = stager.slots.length;
  let uploaded = 0;
  let k = 0;
  const next = () => claim(signals.next, index.length, run.parties, run.schedule);
  for (let r = next(); r; r = next()) {
    for (let i = r[0]; i < r[1]; i++, k++) {
      if (Atomics.load(signals.stop, 0) !== 0) throw cancelled();
      const at = index[i]!;
      const bytes = data[at + 1]!;
      const pieces = new BigUint64Array(3 * data[at + 2]!);
      for (let p = 0; p < pieces.length; p++) pieces[p] = BigInt(data[at + 3 + p]!);
      const slot = k % slots;
      stager.wait(slot);
      readFully(run, stager.slots[slot]!.subarray(0, bytes), data[at]!);
      stager.upload(slot, run.arena, pieces);
      uploaded += bytes;
      Atomics.add(signals.progress, 0, BigInt(bytes));
      run.afterSpan?.(uploaded);
    }
  }
  stager.sync();
  return uploaded;
}

function readFully(run: SpanRun, dst: Uint8Array, position: number): void {
  let done = 0;
  while (done < dst.length) {
    let n: number;
    try {
      n = readSync(run.fd, dst, done, dst.length - done, position + done);
    } catch (e) {
      throw new LoadError("NOT_READABLE", `${run.path}: reading ${dst.length} bytes at ${position} failed: ${(e as Error).message}`, "check the disk and the file's permissions", { cause: e });
    }
    if (n === 0) {
      throw new LoadError("FILE_CHANGED", `${run.path} ended at byte ${position + done} during the load: it was truncated while being read`, "make sure nothing writes the file while it loads, then load it again");
    }
    done += n;
  }
}
