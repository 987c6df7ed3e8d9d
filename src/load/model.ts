// A model in VRAM: one arena per device it spans (one for a single GPU, one per
// GPU of a split, a whole copy per GPU for replicas), each tensor's place in
// them, and the ledgers.
//
// Ownership: the Model owns its arenas from the moment it is built (the load
// hands them over as one stack, load-pipeline.ts); close() frees them all,
// once. Every tensor holds its part of the model, so a caller that keeps a
// tensor (or the tensors map) and drops the Model keeps that memory alive: the
// garbage collector's safety net (src/cuda/arena.ts) frees only arenas nobody
// can reach. A bare devicePtr number keeps nothing alive. After close() the
// pointers are stale and every reading call fails with CLOSED.

import { VramLedger, type Arena } from "../cuda/index.ts";
import type { GgmlType } from "../gguf/index.ts";
import { LoadError, toLoadError } from "./errors.ts";

export interface SourceFile {
  readonly path: string;
  readonly fileSize: number;
  readonly mtimeMs: number;
}

/** Where a model came from: its file, or the first of its split set; `files` lists every one, by shard. */
export interface ModelSource extends SourceFile {
  readonly files: readonly SourceFile[];
}

/** What a tensor is and where its bytes are, without the device address. */
export interface TensorPlacement {
  readonly name: string;
  readonly type: GgmlType;
  /** ggml "ne" order, as in the file. */
  readonly shape: readonly number[];
  readonly bytes: number;
  /** The CUDA device that holds it. */
  readonly device: number;
  /** Offset in that device's arena. */
  readonly offset: number;
  /** Set for a tied LM head: output.weight is token_embd.weight's memory. */
  readonly aliasOf?: string;
  /** Set for a tied LM head on another GPU than token_embd: a copy of its bytes. */
  readonly copyOf?: string;
  /** Where the bytes came from: which file of a split set (0 for one file), and where in it. */
  readonly shard: number;
  readonly fileOffset: number;
}

/** One tensor in VRAM. It keeps its device's arena alive for as long as the caller holds it. */
export class DeviceTensor implements TensorPlacement {
  readonly name: string;
  readonly type: GgmlType;
  readonly shape: readonly number[];
  readonly bytes: number;
  readonly device: number;
  readonly offset: number;
  /** Device address of the first byte (valid until the model is closed). */
  readonly devicePtr: bigint;
  readonly aliasOf?: string;
  readonly copyOf?: string;
  readonly shard: number;
  readonly fileOffset: number;
  readonly #arena: Arena;

  constructor(t: TensorPlacement, arena: Arena) {
    this.name = t.name;
    this.type = t.type;
    this.shape = t.shape;
    this.bytes = t.bytes;
    this.device = t.device;
    this.offset = t.offset;
    this.devicePtr = arena.devicePtr + BigInt(t.offset);
    if (t.aliasOf !== undefined) this.aliasOf = t.aliasOf;
    if (t.copyOf !== undefined) this.copyOf = t.copyOf;
    this.shard = t.shard;
    this.fileOffset = t.fileOffset;
    this.#arena = arena;
  }

  /** Copies the tensor's bytes back from VRAM. */
  read(): Uint8Array {
    return guarded(() => this.#arena.read(this.offset, this.bytes));
  }
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

export type ModelPartInput = Omit<ModelPart, "tensors"> & { readonly tensors: readonly TensorPlacement[] };

export interface ModelDevice {
  readonly device: number;
  readonly layers: readonly [number, number] | null;
  readonly tensors: number;
  readonly bytes: number;
  readonly ledger: VramLedger;
}

export class Model {
  #parts: readonly ModelPart[] | null;
  /** Frees the arenas: the stack the load handed over, or one built here. */
  #owned: DisposableStack;
  /** "single": one GPU; "split": each GPU holds some layers; "replicas": each GPU a whole copy. */
  readonly kind: "single" | "split" | "replicas";
  readonly source: ModelSource;
  /** Every tensor by name, where it is first found (the device holding it, or the first replica). */
  readonly tensors: ReadonlyMap<string, DeviceTensor>;
  /** The ledger of the only device, or every device's entries together (totals are the sums). */
  readonly ledger: VramLedger;
  /** The devices, in the order they were given. */
  readonly devices: readonly ModelDevice[];

  /**
   * `owned` frees every part's arena (the caller moves its stack here: from
   * now on the model is their one owner); without it, the model closes them.
   */
  constructor(kind: Model["kind"], parts: readonly ModelPartInput[], source: ModelSource, owned?: DisposableStack) {
    if (parts.length === 0) throw new LoadError("INVALID_MODEL", "a model needs at least one device", "this is a bug in gguf-vram; please report it");
    this.#owned = owned ?? closing(parts.map((p) => p.arena));
    this.kind = kind;
    this.source = source;
    this.#parts = parts.map((p) => ({ ...p, tensors: new Map(p.tensors.map((t) => [t.name, new DeviceTensor(t, p.arena)])) }));
    const first = new Map<string, DeviceTensor>();
    for (const p of this.#parts) for (const [name, t] of p.tensors) if (!first.has(name)) first.set(name, t);
    this.tensors = first;
    this.ledger = parts.length === 1 ? parts[0]!.ledger : mergedLedger(parts);
    this.devices = this.#parts.map((p) => ({ device: p.device, layers: p.layers, tensors: p.tensors.size, bytes: p.arena.bytes, ledger: p.ledger }));
  }

  /** The first device (the only one, unless the model spans several). */
  get device(): number {
    return this.devices[0]!.device;
  }

  /**
   * The tensor named `name` on `device` (default: where it is first found);
   * NO_SUCH_TENSOR for an unknown name, BAD_DEVICE for a device that does not hold it.
   */
  tensor(name: string, device?: number): DeviceTensor {
    const parts = this.#live();
    if (device === undefined) {
      const t = this.tensors.get(name);
      if (!t) throw new LoadError("NO_SUCH_TENSOR", `the model has no tensor ${name}`, "list the names with model.tensors.keys()");
      return t;
    }
    const part = parts.find((p) => p.device === device);
    if (!part) throw new LoadError("BAD_DEVICE", `the model is not on device ${device} (it is on ${parts.map((p) => p.device).join(", ")})`, "model.devices lists them");
    const t = part.tensors.get(name);
    if (!t) {
      const holders = parts.filter((p) => p.tensors.has(name)).map((p) => p.device);
      if (holders.length === 0) throw new LoadError("NO_SUCH_TENSOR", `the model has no tensor ${name}`, "list the names with model.tensors.keys()");
      throw new LoadError("BAD_DEVICE", `device ${device} does not hold ${name}: it is on device ${holders.join(", ")}`, "model.copiesOf(name) lists every copy");
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
    if (!part) throw new LoadError("BAD_DEVICE", `the model is not on device ${device}`, "model.devices lists them");
    return part.arena;
  }

  /** The first device's arena (the only one for a single GPU). */
  get arena(): Arena {
    return this.arenaOn();
  }

  /** Copies a tensor's bytes back from VRAM (from `device`, default where it is first found). */
  read(name: string, device?: number): Uint8Array {
    return this.tensor(name, device).read();
  }

  /** Frees the VRAM on every device. Idempotent; frees every arena even when one reports an error. */
  close(): void {
    if (this.#parts === null) return;
    this.#parts = null;
    guarded(() => this.#owned.dispose());
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(): readonly ModelPart[] {
    if (!this.#parts) throw new LoadError("CLOSED", "this model was closed; its VRAM is freed", "this is a bug in the caller: the model was used after close()");
    return this.#parts;
  }
}

/** A stack that closes `arenas`, last first. */
function closing(arenas: readonly Arena[]): DisposableStack {
  const stack = new DisposableStack();
  for (const a of arenas) stack.use(a);
  return stack;
}

function mergedLedger(parts: readonly ModelPartInput[]): VramLedger {
  return new VramLedger(parts.flatMap((p) => p.ledger.entries), parts.reduce((n, p) => n + p.arena.bytes, 0), parts[0]!.ledger.alignment);
}

/** Runs `f`; any failure reaches the caller as a LoadError (the first one, when a stack's disposal collected several). */
function guarded<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    let first: unknown = e;
    while (first instanceof SuppressedError) first = first.suppressed;
    throw toLoadError(first);
  }
}
