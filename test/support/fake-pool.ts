// An upload pool of stand-in workers (fake-upload-worker.ts) and jobs for it, for
// testing the pool's scheduling and supervision without a GPU.

import type { Pointer } from "bun:ffi";
import { NATIVE_LIBRARY_PATH } from "../../build.ts";
import type { UploadSpan } from "../../src/load/plan.ts";
import { UploadPool } from "../../src/load/pool.ts";
import { newUploadJob, type UploadJob } from "../../src/load/spans.ts";

const FAKE = new URL("./fake-upload-worker.ts", import.meta.url);

/** A pool of `workers` stand-in workers per device (they never open the library). */
export function fakePool(workers: number, devices = [0]): UploadPool {
  return UploadPool.start({ libraryPath: NATIVE_LIBRARY_PATH, devices, workers, slots: 3, slotBytes: 2 << 20, schedule: "tapered", workerUrl: FAKE });
}

/** n spans of 1..n KiB (distinct sizes, so a lost or doubled span shows in the byte count). */
export function spanJob(n: number, parties: number): UploadJob {
  const spans: UploadSpan[] = Array.from({ length: n }, (_, i) => ({ shard: 0, fileOffset: i << 20, bytes: (i + 1) * 1024, pieces: [0, i << 20, (i + 1) * 1024] }));
  return newUploadJob(spans, [3], parties, "tapered");
}

/** An arena handle the stand-in workers never touch. */
export const FAKE_ARENA = 0x1000 as Pointer;
