// A parsed GGUF header: what the file says and where each tensor's bytes are.

import { GgmlType, ggmlTypeName } from "./ggml-types.ts";
import type { GgufValue } from "./values.ts";

export interface GgufTensorInfo {
  readonly name: string;
  readonly type: GgmlType;
  /** ggml "ne" order: shape[0] is the row length (token_embd is [hidden, vocab]). */
  readonly shape: readonly number[];
  readonly elements: number;
  /** Offset from the start of the data section, as stored in the file. */
  readonly relativeOffset: number;
  /** Absolute offset of the first byte in the file. */
  readonly offset: number;
  readonly bytes: number;
  /** Where the tensor's info record starts in the file. */
  readonly infoOffset: number;
  /** Which file of a split set holds it (0 for a single file); `offset` is in that file. */
  readonly shard: number;
}

/** One file of a model: the model itself, or one shard of a split set. */
export interface ShardInfo {
  readonly path: string | null;
  readonly fileSize: number;
  readonly dataOffset: number;
  readonly tensorCount: number;
}

export interface TypeTotal {
  readonly type: GgmlType;
  readonly name: string;
  readonly count: number;
  readonly bytes: number;
}

interface GgufFileFields {
  path: string | null;
  fileSize: number;
  version: number;
  alignment: number;
  headerBytes: number;
  dataOffset: number;
  metadata: ReadonlyMap<string, GgufValue>;
  keyOffsets: ReadonlyMap<string, number>;
  tensors: readonly GgufTensorInfo[];
  /** Every file, for a split set; by default this one. */
  shards?: readonly ShardInfo[];
  /** Each tensor's index in `tensors` by name, when the caller has built it already. */
  tensorIndex?: ReadonlyMap<string, number>;
}

export class GgufFile {
  readonly path: string | null;
  /** Bytes of the file (of every shard, for a split set). */
  readonly fileSize: number;
  readonly version: number;
  readonly alignment: number;
  /** Bytes of header (up to the end of the last tensor info). */
  readonly headerBytes: number;
  /** Absolute offset of the data section: the header end rounded up to the alignment. */
  readonly dataOffset: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  /** Where each key-value record starts, for messages. */
  readonly keyOffsets: ReadonlyMap<string, number>;
  readonly tensors: readonly GgufTensorInfo[];
  /** The files the model is in: one, or every shard of a split set (metadata comes from the first). */
  readonly shards: readonly ShardInfo[];
  private readonly byName: ReadonlyMap<string, number>;

  constructor(f: GgufFileFields) {
    this.path = f.path;
    this.fileSize = f.fileSize;
    this.version = f.version;
    this.alignment = f.alignment;
    this.headerBytes = f.headerBytes;
    this.dataOffset = f.dataOffset;
    this.metadata = f.metadata;
    this.keyOffsets = f.keyOffsets;
    this.tensors = f.tensors;
    this.shards = f.shards ?? [{ path: f.path, fileSize: f.fileSize, dataOffset: f.dataOffset, tensorCount: f.tensors.length }];
    this.byName = f.tensorIndex ?? new Map(f.tensors.map((t, i) => [t.name, i]));
  }

  tensor(name: string): GgufTensorInfo | undefined {
    const i = this.byName.get(name);
    return i === undefined ? undefined : this.tensors[i];
  }

  get(key: string): GgufValue | undefined {
    return this.metadata.get(key);
  }

  /** A string value, or undefined when absent or not a string. */
  string(key: string): string | undefined {
    const v = this.metadata.get(key);
    return v?.type === "string" ? v.value : undefined;
  }

  /** Sum of the tensors' data bytes (without alignment padding). */
  get tensorDataBytes(): number {
    let n = 0;
    for (const t of this.tensors) n += t.bytes;
    return n;
  }

  /** Tensor count and bytes for each ggml type present, largest first. */
  totalsByType(): TypeTotal[] {
    const totals = new Map<GgmlType, { count: number; bytes: number }>();
    for (const t of this.tensors) {
      const e = totals.get(t.type) ?? { count: 0, bytes: 0 };
      e.count++;
      e.bytes += t.bytes;
      totals.set(t.type, e);
    }
    return [...totals]
      .map(([type, e]) => ({ type, name: ggmlTypeName(type), ...e }))
      .sort((a, b) => b.bytes - a.bytes || a.type - b.type);
  }
}
