// A model in VRAM: one arena, a map from tensor name to its device memory, and
// the ledger. The handle owns the arena; close() frees it.

import type { GgmlType } from "../gguf/index.ts";
import { Arena } from "./arena.ts";
import { CudaError } from "./errors.ts";
import type { VramLedger } from "./ledger.ts";

export interface DeviceTensor {
  readonly name: string;
  readonly type: GgmlType;
  /** ggml "ne" order, as in the file. */
  readonly shape: readonly number[];
  readonly bytes: number;
  /** Offset in the arena. */
  readonly offset: number;
  /** Device address of the first byte. */
  readonly devicePtr: bigint;
  /** Set for a tied LM head: output.weight is token_embd.weight's memory. */
  readonly aliasOf?: string;
  /** Where the bytes came from: which file of a split set (0 for one file), and where in it. */
  readonly shard: number;
  readonly fileOffset: number;
}

export interface SourceFile {
  readonly path: string;
  readonly fileSize: number;
  readonly mtimeMs: number;
}

/** Where a model came from: its file, or the first of its split set; `files` lists every one, by shard. */
export interface ModelSource extends SourceFile {
  readonly files: readonly SourceFile[];
}

export class Model {
  #arena: Arena | null;
  readonly device: number;
  readonly source: ModelSource;
  readonly ledger: VramLedger;
  readonly tensors: ReadonlyMap<string, DeviceTensor>;

  constructor(arena: Arena, tensors: readonly Omit<DeviceTensor, "devicePtr">[], ledger: VramLedger, source: ModelSource) {
    this.#arena = arena;
    this.device = arena.device;
    this.ledger = ledger;
    this.source = source;
    this.tensors = new Map(tensors.map((t) => [t.name, { ...t, devicePtr: arena.devicePtr + BigInt(t.offset) }]));
  }

  /** The tensor named `name`; throws for an unknown name. */
  tensor(name: string): DeviceTensor {
    this.#live();
    const t = this.tensors.get(name);
    if (!t) throw new CudaError("INVALID_ARGUMENT", 0, 0, `the model has no tensor ${name}`, "list the names with model.tensors.keys()");
    return t;
  }

  /** VRAM the model holds: the arena (tensor data plus alignment padding). */
  get vramBytes(): number {
    return this.#live().bytes;
  }

  get closed(): boolean {
    return this.#arena === null;
  }

  /** The arena, for code that reads or checks VRAM (verify, tests). */
  get arena(): Arena {
    return this.#live();
  }

  /** Copies a tensor's bytes back from VRAM. */
  read(name: string): Uint8Array {
    const t = this.tensor(name);
    return this.#live().read(t.offset, t.bytes);
  }

  /** Frees the VRAM. Idempotent. */
  close(): void {
    const arena = this.#arena;
    this.#arena = null;
    arena?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(): Arena {
    if (!this.#arena) throw new CudaError("CLOSED", 0, 0, "this model was closed; its VRAM is freed");
    return this.#arena;
  }
}
