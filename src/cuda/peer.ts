// Copies between two devices' arenas (replicas): peer access, and copies that
// run on their own stream while the caller polls, so the JS thread never blocks
// on one.

import type { Pointer } from "bun:ffi";
import type { Arena } from "./arena.ts";
import { native } from "./native.ts";
import { call } from "./runtime.ts";

/** Enables direct access between two devices, both ways, when the hardware allows it; false when it does not. */
export function enablePeerAccess(device: number, peer: number): boolean {
  const out = new Int32Array(1);
  call(native().gv_peer_enable(device, peer, out));
  return out[0] === 1;
}

/** One copy of an arena range to the same range of another device's arena, in flight. */
export class PeerCopy {
  #handle: Pointer | 0;
  readonly bytes: number;

  private constructor(handle: Pointer, bytes: number) {
    this.#handle = handle;
    this.bytes = bytes;
  }

  /** Starts copying [offset, offset + bytes) of `src` into `dst`. */
  static start(dst: Arena, src: Arena, offset: number, bytes: number): PeerCopy {
    const out = new BigUint64Array(1);
    call(native().gv_copy_start(dst.handle, src.handle, BigInt(offset), BigInt(bytes), out));
    return new PeerCopy(Number(out[0]!) as Pointer, bytes);
  }

  /** Whether the copy has finished; throws the copy's failure. */
  get done(): boolean {
    if (this.#handle === 0) return true;
    const out = new Int32Array(1);
    call(native().gv_copy_query(this.#handle, out));
    return out[0] === 1;
  }

  /** Waits for the copy (if still running) and frees it. Idempotent. */
  close(): void {
    if (this.#handle === 0) return;
    const handle = this.#handle;
    this.#handle = 0;
    call(native().gv_copy_free(handle));
  }

  get closed(): boolean {
    return this.#handle === 0;
  }
}
