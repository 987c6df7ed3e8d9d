// Hooks for tests and benchmarks, kept out of the library's API (src/cuda/index.ts
// does not export them, nor does the package): injected faults, poisoned arenas,
// the benchmark upload modes and a blocking native call. None of them can make a
// load report success with wrong bytes in VRAM: a fault fails it, poison is
// overwritten by the upload (and shows where it was not), and an upload in a
// benchmark mode always ends in BENCH_MODE.

import { native } from "./native.ts";
import { call } from "./runtime.ts";

export enum Fault {
  DeviceAlloc = 0,
  HostPin = 1,
  Copy = 2,
  Event = 3,
  /** A copy between two devices' arenas (replicas), counted for the destination device. */
  PeerCopy = 4,
  /** Selecting the device to free an arena: the arena is not freed (NOT_FREED) and stays counted. */
  FreeDevice = 5,
}

/**
 * Makes the k-th call of that kind (from now, 1-based) fail as CUDA would; with
 * `device`, only calls for that device count. For tests.
 */
export function injectFault(kind: Fault, k: number, device?: number): void {
  native().gv_fault_device(device ?? -1);
  call(native().gv_fault_inject(kind, BigInt(k)));
}

/** How many injected faults of that kind have fired since the last resetFaults(). */
export function faultsFired(kind: Fault): number {
  return Number(native().gv_fault_fired(kind));
}

/** Disarms every fault and zeroes the fired counts. */
export function resetFaults(): void {
  native().gv_fault_reset();
}

/**
 * Tests: fill every arena created from now on with `byte` before it is used, so
 * VRAM the upload never writes reads as poison, not as an earlier load's bytes
 * from a reused allocation. null turns it off.
 */
export function poisonNewArenas(byte: number | null): void {
  native().gv_debug_poison(byte === null ? -1 : byte & 0xff);
}

/**
 * Benchmarks only: uploads from now on do half their work — "read" reads each
 * span into its pinned slot and copies nothing, "copy" copies the slots without
 * reading the file — to show where the time goes; "normal" does both. Such an
 * upload's VRAM is garbage, so the load always fails with BENCH_MODE once it
 * has moved every byte: time it until that failure.
 */
export function debugUploadMode(mode: "normal" | "read" | "copy"): void {
  native().gv_debug_upload_mode(mode === "read" ? 1 : mode === "copy" ? 2 : 0);
}

/**
 * A gated native call that blocks this thread for `ms`, then sets returned[0]
 * to 1: a Worker that runs it shows when a terminated thread really stops
 * (src/load/workers.ts). CANCELLED at once when `gate` was retired.
 */
export function debugBlock(ms: number, returned: Int32Array, gate: Int32Array | null = null): void {
  call(native().gv_debug_block(ms, returned, gate));
}
