// Opening the library, turning status codes into errors, and the process-wide
// facts: versions, live resources, measured ceilings. The hooks for tests and
// benchmarks (faults, poison, upload modes) are in testing.ts, outside the API.

import { check } from "./errors.ts";
import { native, openNative, type NativeSymbols } from "./native.ts";

/**
 * Opens libgguf_vram on this thread. The main thread builds it first when
 * needed (build.ts); a Worker passes the path the main thread used.
 */
export async function openCuda(libraryPath?: string): Promise<NativeSymbols> {
  if (libraryPath) return openNative(libraryPath);
  const { ensureNativeLibrary } = await import("../../build.ts");
  return openNative(await ensureNativeLibrary({ quiet: true }));
}

/** Opens the library already built at `libraryPath` (a Worker's way: the main thread built it). */
export function openCudaAt(libraryPath: string): void {
  openNative(libraryPath);
}

/** Throws the library's last error when `status` is not GV_OK. */
export function call(status: number): void {
  const gv = native();
  check(status, () => String(gv.gv_last_error()), () => gv.gv_last_cuda_error(), () => gv.gv_last_os_error());
}

export function versions(): { runtime: number; driver: number } {
  const out = new Int32Array(2);
  call(native().gv_versions(out.subarray(0, 1), out.subarray(1, 2)));
  return { runtime: out[0]!, driver: out[1]! };
}

export interface LiveResources {
  arenas: number;
  arenaBytes: number;
  pinnedRanges: number;
  pinnedBytes: number;
  stagers: number;
  /** Copies between devices (replicas) not yet freed. */
  copies: number;
}

/** What the library holds right now, across all threads: the leak check. */
export function liveResources(): LiveResources {
  const out = new BigUint64Array(6);
  native().gv_live(out);
  const [arenas, arenaBytes, pinnedRanges, pinnedBytes, stagers, copies] = [...out].map(Number) as [number, number, number, number, number, number];
  return { arenas, arenaBytes, pinnedRanges, pinnedBytes, stagers, copies };
}

/** Host-to-device cudaMemcpy bandwidth in GB/s (median of `reps`): the ceiling an upload is measured against. */
export function measureH2D(device: number, bytes: number, pinned: boolean, reps = 10): number {
  const out = new Float64Array(1);
  call(native().gv_measure_h2d(device, BigInt(bytes), pinned ? 1 : 0, reps, out));
  return out[0]!;
}

/**
 * Pinned cudaMemcpy to every device in `devices` at once, a thread each: each
 * device's rate and the aggregate (every byte over the whole time) in GB/s.
 */
export function measureH2DMany(devices: readonly number[], bytes: number, reps = 10): { perDevice: number[]; total: number } {
  const out = new Float64Array(devices.length + 1);
  call(native().gv_measure_h2d_many(new Int32Array(devices), devices.length, BigInt(bytes), reps, out));
  return { perDevice: [...out.subarray(0, devices.length)], total: out[devices.length]! };
}

/** pread of the first `bytes` of open file `fd` by `threads` threads at once, `chunkBytes` per read: GB/s. */
export function measureRead(fd: number, bytes: number, threads: number, chunkBytes: number): number {
  const out = new Float64Array(1);
  call(native().gv_measure_read(fd, BigInt(bytes), threads, BigInt(chunkBytes), out));
  return out[0]!;
}

/** Page-locks a host buffer (read-only mappings need readOnly). */
export function pinHost(buf: Uint8Array, readOnly: boolean): void {
  call(native().gv_pin(buf, BigInt(buf.length), readOnly ? 1 : 0));
}

export function unpinHost(buf: Uint8Array): void {
  call(native().gv_unpin(buf));
}
