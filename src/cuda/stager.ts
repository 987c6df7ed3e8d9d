// Pinned host slots and a stream: bytes are read into a slot, copied to the
// arena asynchronously, and the slot is refilled once its copies are done.

import { toArrayBuffer, type Pointer } from "bun:ffi";
import { CudaError } from "./errors.ts";
import { native } from "./native.ts";
import { call } from "./runtime.ts";

export class Stager {
  #handle: Pointer | 0;
  readonly slotBytes: number;
  /** Views of the pinned slots: read file bytes straight into these. */
  readonly slots: readonly Uint8Array[];

  private constructor(handle: Pointer) {
    this.#handle = handle;
    const gv = native();
    this.slotBytes = Number(gv.gv_stager_slot_bytes(handle));
    const n = gv.gv_stager_slots(handle);
    this.slots = Array.from({ length: n }, (_, i) => {
      const p = gv.gv_stager_slot(handle, i);
      if (!p) throw new CudaError("INVALID_ARGUMENT", 0, 0, `stager slot ${i} has no memory`);
      return new Uint8Array(toArrayBuffer(p, 0, this.slotBytes));
    });
  }

  /**
   * `hugePages`: the ring in 2 MiB transparent huge pages (see gguf_vram.h).
   * A worker passes its gate and its slot of shared memory as `publish`: the
   * handle is written there before the call returns (workers.ts).
   */
  static create(device: number, slots: number, slotBytes: number, hugePages = false, gated?: { gate: Int32Array; publish: BigUint64Array }): Stager {
    const out = gated?.publish ?? new BigUint64Array(1);
    call(native().gv_stager_create(device, slots, BigInt(slotBytes), hugePages ? 1 : 0, out, gated?.gate ?? null));
    return new Stager(Number(out[0]!) as Pointer);
  }

  /** The native handle: for this thread's native calls, and for freeing the ring if its Worker dies. */
  get handle(): Pointer {
    return this.#live();
  }

  /** Frees a stager by its native handle: for a ring whose owner (a Worker) died. */
  static freeHandle(handle: Pointer): void {
    call(native().gv_stager_free(handle));
  }

  /** Blocks until the copies from `slot` are done. */
  wait(slot: number): void {
    call(native().gv_stager_wait(this.#live(), slot));
  }

  /**
   * Enqueue copies from `slot` into the arena whose native handle is `arena`
   * (Arena.handle; a Worker gets it as a number): `pieces` holds (slot offset,
   * arena offset, bytes) triples.
   */
  upload(slot: number, arena: Pointer, pieces: BigUint64Array): void {
    call(native().gv_stager_upload(this.#live(), slot, arena, pieces, pieces.length / 3));
  }

  /** Enqueue one copy from any host buffer (pinned or not); its completion is tracked by `slot`. */
  uploadFrom(slot: number, src: Uint8Array, arena: Pointer, arenaOffset: number): void {
    call(native().gv_stager_upload_from(this.#live(), slot, src, arena, BigInt(arenaOffset), BigInt(src.length)));
  }

  sync(): void {
    call(native().gv_stager_sync(this.#live()));
  }

  /** Waits for pending copies, unpins and frees the slots. Idempotent. */
  close(): void {
    if (this.#handle === 0) return;
    const handle = this.#handle;
    this.#handle = 0;
    call(native().gv_stager_free(handle));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(): Pointer {
    if (this.#handle === 0) throw new CudaError("CLOSED", 0, 0, "this stager was freed");
    return this.#handle;
  }
}
