// A model in VRAM: one arena per device it spans (one for a single GPU, one per
// GPU of a split, a whole copy per GPU for replicas), a map from tensor name to
// its device memory, and the ledgers. The handle owns the arenas; close() frees
// them all.

import type { GgmlType } from "../gguf/index.ts";
import { Arena } from "./arena.ts";
import { CudaError } from "./errors.ts";
import { VramLedger } from "./ledger.ts";

export interface DeviceTensor {
  readonly name: string;
  readonly type: GgmlType;
  /** ggml "ne" order, as in the file. */
  readonly shape: readonly number[];
  readonly bytes: number;
  /** The CUDA device that holds it. */
  readonly device: number;
  /** Offset in that device's arena. */
  readonly offset: number;
  /** Device address of the first byte. */
  readonly devicePtr: bigint;
  /** Set for a tied LM head: output.weight is token_embd.weight's memory. */
  readonly aliasOf?: string;
  /** Set for a tied LM head on another GPU than token_embd: a copy of its bytes. */
  readonly copyOf?: string;
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

/** One device's part of a model. */
export interface ModelPart {
  readonly device: number;
  readonly arena: Arena;
  /** The blocks it holds, first and last, or null. */
  readonly layers: readonly [number, number] | null;
  readonly ledger: VramLedger;
  readonly tensors: ReadonlyMap<string, DeviceTensor>;
}

export type ModelPartInput = Omit<ModelPart, "tensors"> & { readonly tensors: readonly Omit<DeviceTensor, "devicePtr">[] };

export class Model {
  #parts: readonly ModelPart[] | null;
  /** "single": one GPU; "split": each GPU holds some layers; "replicas": each GPU a whole copy. */
  readonly kind: "single" | "split" | "replicas";
  readonly source: ModelSource;
  /** Every tensor by name, where it is first found (the device holding it, or the first replica). */
  readonly tensors: ReadonlyMap<string, DeviceTensor>;
  /** The ledger of the only device, or every device's entries together (totals are the sums). */
  readonly ledger: VramLedger;
  /** The devices, in the order they were given. */
  readonly devices: readonly { readonly device: number; readonly layers: readonly [number, number] | null; readonly tensors: number; readonly bytes: number; readonly ledger: VramLedger }[];

  constructor(kind: Model["kind"], parts: readonly ModelPartInput[], source: ModelSource) {
    if (parts.length === 0) throw new CudaError("INVALID_ARGUMENT", 0, 0, "a model needs at least one device");
    this.kind = kind;
    this.source = source;
    this.#parts = parts.map((p) => ({ ...p, tensors: new Map(p.tensors.map((t) => [t.name, { ...t, devicePtr: p.arena.devicePtr + BigInt(t.offset) }])) }));
    const first = new Map<string, DeviceTensor>();
    for (const p of this.#parts) for (const [name, t] of p.tensors) if (!first.has(name)) first.set(name, t);
    this.tensors = first;
    this.ledger = parts.length === 1 ? parts[0]!.ledger : new VramLedger(parts.flatMap((p) => p.ledger.entries), parts.reduce((n, p) => n + p.arena.bytes, 0), parts[0]!.ledger.alignment);
    this.devices = this.#parts.map((p) => ({ device: p.device, layers: p.layers, tensors: p.tensors.size, bytes: p.arena.bytes, ledger: p.ledger }));
  }

  /** The first device (the only one, unless the model spans several). */
  get device(): number {
    return this.devices[0]!.device;
  }

  /**
   * The tensor named `name` on `device` (default: where it is first found);
   * throws for an unknown name, or a device that does not hold it.
   */
  tensor(name: string, device?: number): DeviceTensor {
    const parts = this.#live();
    if (device === undefined) {
      const t = this.tensors.get(name);
      if (!t) throw new CudaError("INVALID_ARGUMENT", 0, 0, `the model has no tensor ${name}`, "list the names with model.tensors.keys()");
      return t;
    }
    const part = parts.find((p) => p.device === device);
    if (!part) throw new CudaError("INVALID_ARGUMENT", 0, 0, `the model is not on device ${device} (it is on ${parts.map((p) => p.device).join(", ")})`, "model.devices lists them");
    const t = part.tensors.get(name);
    if (!t) {
      const holders = parts.filter((p) => p.tensors.has(name)).map((p) => p.device);
      const where = holders.length > 0 ? `it is on device ${holders.join(", ")}` : "the model has no such tensor";
      throw new CudaError("INVALID_ARGUMENT", 0, 0, `device ${device} does not hold ${name}: ${where}`, "model.copiesOf(name) lists every copy");
    }
    return t;
  }

  /** Every copy of `name`: one, or one per device that holds it (replicas, RoPE factors of a split). */
  copiesOf(name: string): DeviceTensor[] {
    return this.#live().flatMap((p) => {
      const t = p.tensors.get(name);
      return t ? [t] : [];
    });
  }

  /** Each device's part: its arena and its tensors (verify, tests). */
  get parts(): readonly ModelPart[] {
    return this.#live();
  }

  /** VRAM the model holds: every arena (tensor data plus alignment padding). */
  get vramBytes(): number {
    return this.#live().reduce((n, p) => n + p.arena.bytes, 0);
  }

  get closed(): boolean {
    return this.#parts === null;
  }

  /** The arena of `device` (default: the first), for code that reads or checks VRAM. */
  arenaOn(device = this.device): Arena {
    const part = this.#live().find((p) => p.device === device);
    if (!part) throw new CudaError("INVALID_ARGUMENT", 0, 0, `the model is not on device ${device}`);
    return part.arena;
  }

  /** The first device's arena (the only one for a single GPU). */
  get arena(): Arena {
    return this.arenaOn();
  }

  /** Copies a tensor's bytes back from VRAM (from `device`, default where it is first found). */
  read(name: string, device?: number): Uint8Array {
    const t = this.tensor(name, device);
    return this.arenaOn(t.device).read(t.offset, t.bytes);
  }

  /** Frees the VRAM on every device. Idempotent; frees every arena even when one reports an error. */
  close(): void {
    const parts = this.#parts;
    this.#parts = null;
    if (!parts) return;
    let first: unknown = null;
    for (const p of parts) {
      try {
        p.arena.close();
      } catch (e) {
        first ??= e;
      }
    }
    if (first) throw first;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(): readonly ModelPart[] {
    if (!this.#parts) throw new CudaError("CLOSED", 0, 0, "this model was closed; its VRAM is freed");
    return this.#parts;
  }
}
