// One upload's shared state (gv_upload_shared in cuda/gguf_vram.h) and the
// native steps that work on it: the upload of spans, and host checksums of
// file ranges. The state lives in a SharedArrayBuffer, so every Worker that
// receives it works on the same cursor, stop flag and byte count.

import type { Pointer } from "bun:ffi";
import { native } from "./native.ts";
import { call } from "./runtime.ts";
import type { Stager } from "./stager.ts";

/** How threads split the spans (gv_schedule); "tapered" is the default. */
export const SCHEDULES = { tapered: 0, guided: 1, chunks: 2, shares: 3 } as const;
export type Schedule = keyof typeof SCHEDULES;

const SHARED_BYTES = 24; // sizeof(gv_upload_shared)

export class UploadShared {
  readonly buffer: SharedArrayBuffer;
  private readonly i32: Int32Array;
  private readonly u64: BigUint64Array;

  /** Wraps the state another thread created, or creates a new one for `parties` threads. */
  constructor(from: SharedArrayBuffer | { parties: number; schedule: Schedule }) {
    this.buffer = from instanceof SharedArrayBuffer ? from : new SharedArrayBuffer(SHARED_BYTES);
    this.i32 = new Int32Array(this.buffer);
    this.u64 = new BigUint64Array(this.buffer);
    if (!(from instanceof SharedArrayBuffer)) {
      const u32 = new Uint32Array(this.buffer);
      u32[4] = Math.max(1, from.parties);
      u32[5] = SCHEDULES[from.schedule];
    }
  }

  /** The view the native calls take (its address is the struct's). */
  get raw(): Int32Array {
    return this.i32;
  }

  /** Ask every thread to stop before its next span. */
  stop(): void {
    Atomics.store(this.i32, 1, 1);
  }

  get stopped(): boolean {
    return Atomics.load(this.i32, 1) !== 0;
  }

  /** The first span nobody has claimed. */
  get nextSpan(): number {
    return Atomics.load(this.i32, 0);
  }

  get bytesDone(): number {
    return Number(Atomics.load(this.u64, 1));
  }
}

/** What one native step did. */
export interface StepResult {
  readonly bytes: number;
  readonly finished: boolean;
}

// Out-parameters, reused: a thread makes one native call at a time.
const bytesOut = new BigUint64Array(1);
const finishedOut = new Int32Array(1);

/**
 * Upload up to `maxSpans` spans of a job on the calling thread (gv_upload_step):
 * `spans` is the packed array (see src/load/spans.ts), `claims` one slot per span,
 * `run` this thread's current run, kept between calls; `gate` the worker's
 * (gguf_vram.h), null on the main thread.
 */
export function uploadStep(
  stager: Stager,
  arena: Pointer,
  job: { readonly spans: BigUint64Array; readonly spanCount: number; readonly claims: Uint32Array; readonly shared: UploadShared },
  worker: number,
  run: Int32Array,
  maxSpans: number,
  gate: Int32Array | null = null,
): StepResult {
  call(native().gv_upload_step(stager.handle, arena, job.spans, job.spanCount, job.shared.raw, job.claims, worker, run, maxSpans, bytesOut, finishedOut, gate));
  return { bytes: Number(bytesOut[0]!), finished: finishedOut[0] === 1 };
}

/**
 * Host checksums of up to `maxChunks` file chunks (gv_checksum_file_step):
 * `chunks` holds (fd, file offset, bytes, first word) quadruples; sums[i] gets
 * chunk i's partial sum. `buffer` must hold the largest chunk. `gate`: a
 * worker's (gguf_vram.h), null on the main thread.
 */
export function checksumFileStep(chunks: BigUint64Array, sums: BigUint64Array, shared: UploadShared, buffer: Uint8Array, maxChunks: number, gate: Int32Array | null = null): StepResult {
  call(native().gv_checksum_file_step(chunks, chunks.length / 4, shared.raw, sums, buffer, BigInt(buffer.length), maxChunks, finishedOut, gate));
  return { bytes: 0, finished: finishedOut[0] === 1 };
}
