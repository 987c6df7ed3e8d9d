// The upload loop, the same in a Worker and on the main thread: read each span
// from the file straight into a pinned slot, enqueue its copies, move to the next
// slot; a slot is refilled only once its copies are done.

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
}

export function newSignals(): UploadSignals {
  return { stop: new Int32Array(new SharedArrayBuffer(4)), progress: new BigInt64Array(new SharedArrayBuffer(8)) };
}

export interface SpanRun {
  readonly fd: number;
  readonly path: string;
  readonly stager: Stager;
  readonly arena: Pointer;
  readonly spans: readonly UploadSpan[];
  readonly signals: UploadSignals;
  /** Called after each span with the bytes uploaded so far by this run (the main-thread mode's progress). */
  readonly afterSpan?: (bytes: number) => void;
}

export function runSpans(run: SpanRun): number {
  const { stager, spans, signals } = run;
  const slots = stager.slots.length;
  let uploaded = 0;
  for (let i = 0; i < spans.length; i++) {
    if (Atomics.load(signals.stop, 0) !== 0) throw cancelled();
    const span = spans[i]!;
    const slot = i % slots;
    stager.wait(slot);
    readFully(run, stager.slots[slot]!.subarray(0, span.bytes), span.fileOffset);
    stager.upload(slot, run.arena, BigUint64Array.from(span.pieces, BigInt));
    uploaded += span.bytes;
    Atomics.add(signals.progress, 0, BigInt(span.bytes));
    run.afterSpan?.(uploaded);
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
