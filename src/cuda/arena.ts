// One device allocation that holds a model's weights; tensors are offsets in it.

import type { Pointer } from "bun:ffi";
import { CudaError, GV_STATUS } from "./errors.ts";
import { native } from "./native.ts";
import { call } from "./runtime.ts";

/**
 * A safety net: an arena nobody can reach any more (no Model, no tensor of it)
 * was dropped without close(), and is freed when collected. A tensor keeps its
 * arena reachable (src/load/model.ts), so this never frees memory a caller can
 * still name through the library; a bare devicePtr number does not count.
 */
const unclosed = new FinalizationRegistry<Pointer>((handle) => native().gv_arena_free(handle));

const SHAREABLE = 1; // GV_ARENA_SHAREABLE

export interface ArenaOptions {
  /**
   * One CUDA virtual-memory allocation that other processes can map
   * (export()); its memory lives until every process that mapped it lets go.
   */
  readonly shareable?: boolean;
}

export class Arena {
  #handle: Pointer | 0;
  readonly device: number;
  readonly bytes: number;
  /** The allocation behind it: `bytes`, or for a shareable arena rounded up to the granularity (2 MiB). */
  readonly allocBytes: number;
  readonly shareable: boolean;
  /** The device address of byte 0. */
  readonly devicePtr: bigint;

  private constructor(handle: Pointer) {
    this.#handle = handle;
    const gv = native();
    this.device = gv.gv_arena_device(handle);
    this.bytes = Number(gv.gv_arena_bytes(handle));
    this.allocBytes = Number(gv.gv_arena_alloc_bytes(handle));
    this.shareable = (gv.gv_arena_flags(handle) & SHAREABLE) !== 0;
    this.devicePtr = BigInt(gv.gv_arena_device_ptr(handle));
    unclosed.register(this, handle, this);
  }

  /** One cudaMalloc of `bytes` on `device` (or one shareable allocation). */
  static create(device: number, bytes: number, options: ArenaOptions = {}): Arena {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new CudaError("INVALID_ARGUMENT", 0, 0, `an arena of ${bytes} bytes`);
    const out = new BigUint64Array(1);
    call(native().gv_arena_create_ex(device, BigInt(bytes), options.shareable ? SHAREABLE : 0, out));
    return new Arena(Number(out[0]!) as Pointer);
  }

  /**
   * Another process's shareable allocation, received as `fd` (which stays the caller's to close),
   * mapped on `device` as an arena of `bytes` of its `allocBytes`; close() unmaps it.
   */
  static import(fd: number, allocBytes: number, bytes: number, device: number): Arena {
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || !Number.isSafeInteger(allocBytes) || allocBytes < bytes) {
      throw new CudaError("INVALID_ARGUMENT", 0, 0, `an arena of ${bytes} bytes in an allocation of ${allocBytes}`);
    }
    const out = new BigUint64Array(1);
    call(native().gv_arena_import(fd, BigInt(allocBytes), BigInt(bytes), device, out));
    return new Arena(Number(out[0]!) as Pointer);
  }

  /** A shareable arena's allocation as a new file descriptor, for another process to map; the caller closes it. */
  export(): number {
    const fd = new Int32Array(1);
    call(native().gv_arena_export(this.#live(), fd));
    return fd[0]!;
  }

  /** The native handle, for the stager and workers in this process. */
  get handle(): Pointer {
    return this.#live();
  }

  get closed(): boolean {
    return this.#handle === 0;
  }

  /** Copy `bytes` from arena offset `offset` to a new host buffer. */
  read(offset: number, bytes: number): Uint8Array {
    const out = new Uint8Array(bytes);
    if (bytes > 0) call(native().gv_arena_read(this.#live(), BigInt(offset), out, BigInt(bytes)));
    return out;
  }

  write(offset: number, data: Uint8Array): void {
    if (data.length > 0) call(native().gv_arena_write(this.#live(), BigInt(offset), data, BigInt(data.length)));
  }

  /** GPU checksums (gv_checksum_device) of [offset, offset + bytes) ranges. */
  checksums(ranges: readonly { offset: number; bytes: number }[]): bigint[] {
    if (ranges.length === 0) return [];
    const flat = new BigUint64Array(ranges.length * 2);
    ranges.forEach((r, i) => {
      flat[2 * i] = BigInt(r.offset);
      flat[2 * i + 1] = BigInt(r.bytes);
    });
    const out = new BigUint64Array(ranges.length);
    call(native().gv_checksum_device(this.#live(), flat, ranges.length, out));
    return [...out];
  }

  /**
   * Frees the device memory. Idempotent. When the device cannot even be
   * selected (NOT_FREED), the memory is still held and the arena stays open,
   * so close() may be called again.
   */
  close(): void {
    if (this.#handle === 0) return;
    const handle = this.#handle;
    const status = native().gv_arena_free(handle);
    if (status === GV_STATUS.NOT_FREED) call(status);
    this.#handle = 0;
    unclosed.unregister(this);
    call(status);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(): Pointer {
    if (this.#handle === 0) throw new CudaError("CLOSED", 0, 0, "this arena was freed");
    return this.#handle;
  }
}
