// One device allocation that holds a model's weights; tensors are offsets in it.

import type { Pointer } from "bun:ffi";
import { CudaError } from "./errors.ts";
import { native } from "./native.ts";
import { call } from "./runtime.ts";

/** A safety net: an arena dropped without close() is freed when collected. */
const unclosed = new FinalizationRegistry<Pointer>((handle) => native().gv_arena_free(handle));

export class Arena {
  #handle: Pointer | 0;
  readonly device: number;
  readonly bytes: number;
  /** The device address of byte 0. */
  readonly devicePtr: bigint;

  private constructor(handle: Pointer) {
    this.#handle = handle;
    const gv = native();
    this.device = gv.gv_arena_device(handle);
    this.bytes = Number(gv.gv_arena_bytes(handle));
    this.devicePtr = BigInt(gv.gv_arena_device_ptr(handle));
    unclosed.register(this, handle, this);
  }

  /** One cudaMalloc of `bytes` on `device`. */
  static create(device: number, bytes: number): Arena {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new CudaError("INVALID_ARGUMENT", 0, 0, `an arena of ${bytes} bytes`);
    const out = new BigUint64Array(1);
    call(native().gv_arena_create(device, BigInt(bytes), out));
    return new Arena(Number(out[0]!) as Pointer);
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

  /** Frees the device memory. Idempotent. */
  close(): void {
    if (this.#handle === 0) return;
    const handle = this.#handle;
    this.#handle = 0;
    unclosed.unregister(this);
    call(native().gv_arena_free(handle));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(): Pointer {
    if (this.#handle === 0) throw new CudaError("CLOSED", 0, 0, "this arena was freed");
    return this.#handle;
  }
}
