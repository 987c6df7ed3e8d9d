// Encodes GGUF headers, and writes whole files with tensor data from a callback.
// Used for fixtures: it is permissive on purpose (raw type ids, raw byte names,
// explicit offsets), so corrupt files can be built from the same code, and it
// returns where each field landed so a test can patch one.

import { closeSync, ftruncateSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { GGML_TYPES } from "./ggml-types.ts";
import { GgufValueType } from "./values.ts";
import type { GgufArray, GgufValue } from "./values.ts";

export interface WriteEntry {
  /** A string, or raw bytes (to write a key that is not UTF-8). */
  readonly key: string | Uint8Array;
  readonly value: GgufValue;
  /** Overrides the value-type id written (for corrupt files). */
  readonly rawType?: number;
}

export interface WriteTensor {
  readonly name: string | Uint8Array;
  /** A ggml type id; need not be valid. */
  readonly type: number;
  readonly shape: readonly (number | bigint)[];
  /** Offset relative to the data section; by default the next aligned free byte. */
  readonly offset?: bigint;
}

export interface HeaderSpec {
  readonly version?: 1 | 2 | 3;
  readonly metadata: readonly WriteEntry[];
  readonly tensors: readonly WriteTensor[];
  /** Counts written in the header; by default the real ones. */
  readonly tensorCountOverride?: bigint;
  readonly keyCountOverride?: bigint;
}

/** Where each field of the header was written. */
export interface FieldMap {
  readonly tensorCount: number;
  readonly keyCount: number;
  readonly entries: { key: number; type: number; value: number }[];
  readonly tensors: { name: number; nDims: number; dims: number; type: number; offset: number }[];
}

export interface EncodedHeader {
  /** The header, padded with zeros to the data offset. */
  readonly bytes: Uint8Array;
  readonly alignment: number;
  readonly dataOffset: number;
  /** Per tensor: offset relative to the data section, and data bytes (0 when the type is invalid). */
  readonly placements: readonly { offset: number; bytes: number }[];
  /** Bytes of the data section, padding included. */
  readonly dataBytes: number;
  readonly fields: FieldMap;
}

// ─── a growable byte buffer ───────────────────────────────────────────────────

class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): number {
    const at = this.length;
    if (at + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, at + n));
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.length += n;
    return at;
  }
  // reserve() may replace the view: take the position first.
  u8(v: number) { const at = this.reserve(1); this.view.setUint8(at, v); }
  i8(v: number) { const at = this.reserve(1); this.view.setInt8(at, v); }
  u16(v: number) { const at = this.reserve(2); this.view.setUint16(at, v, true); }
  i16(v: number) { const at = this.reserve(2); this.view.setInt16(at, v, true); }
  u32(v: number) { const at = this.reserve(4); this.view.setUint32(at, v, true); }
  i32(v: number) { const at = this.reserve(4); this.view.setInt32(at, v, true); }
  f32(v: number) { const at = this.reserve(4); this.view.setFloat32(at, v, true); }
  f64(v: number) { const at = this.reserve(8); this.view.setFloat64(at, v, true); }
  u64(v: bigint) { const at = this.reserve(8); this.view.setBigUint64(at, BigInt.asUintN(64, v), true); }
  i64(v: bigint) { const at = this.reserve(8); this.view.setBigInt64(at, v, true); }
  bytes(b: Uint8Array) { const at = this.reserve(b.length); this.buf.set(b, at); }
  result(): Uint8Array { return this.buf.slice(0, this.length); }
}

const encoder = new TextEncoder();

// ─── values ───────────────────────────────────────────────────────────────────

const TYPE_IDS: Record<GgufValue["type"], GgufValueType> = {
  u8: GgufValueType.U8, i8: GgufValueType.I8, u16: GgufValueType.U16, i16: GgufValueType.I16,
  u32: GgufValueType.U32, i32: GgufValueType.I32, f32: GgufValueType.F32, f64: GgufValueType.F64,
  u64: GgufValueType.U64, i64: GgufValueType.I64, bool: GgufValueType.BOOL, string: GgufValueType.STRING,
  array: GgufValueType.ARRAY,
};

class HeaderWriter extends ByteWriter {
  constructor(readonly sizeWidth: 4 | 8) {
    super();
  }
  size(n: number | bigint) {
    if (this.sizeWidth === 8) this.u64(BigInt(n));
    else this.u32(Number(n));
  }
  string(s: string | Uint8Array) {
    const b = typeof s === "string" ? encoder.encode(s) : s;
    this.size(b.length);
    this.bytes(b);
  }
  value(v: GgufValue) {
    switch (v.type) {
      case "u8": return this.u8(v.value);
      case "i8": return this.i8(v.value);
      case "u16": return this.u16(v.value);
      case "i16": return this.i16(v.value);
      case "u32": return this.u32(v.value);
      case "i32": return this.i32(v.value);
      case "f32": return this.f32(v.value);
      case "f64": return this.f64(v.value);
      case "u64": return this.u64(v.value);
      case "i64": return this.i64(v.value);
      case "bool": return this.u8(v.value ? 1 : 0);
      case "string": return this.string(v.value);
      case "array": return this.array(v);
    }
  }
  array(a: GgufArray) {
    this.u32(a.itemType === "array" ? GgufValueType.ARRAY : TYPE_IDS[a.itemType]);
    this.size(a.length);
    switch (a.itemType) {
      case "string":
        for (let i = 0; i < a.length; i++) this.string(a.items.rawBytes(i));
        return;
      case "array":
        for (const inner of a.items) this.array(inner);
        return;
      default: {
        const items = a.items;
        this.bytes(new Uint8Array(items.buffer, items.byteOffset, items.byteLength));
      }
    }
  }
}

// ─── headers ──────────────────────────────────────────────────────────────────

function alignmentOf(metadata: readonly WriteEntry[]): number {
  const e = metadata.find((m) => m.key === "general.alignment");
  return e && e.value.type === "u32" && e.value.value > 0 ? e.value.value : 32;
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Data bytes of a tensor, or 0 when its type or shape cannot be sized. */
export function writeTensorBytes(t: WriteTensor): number {
  const traits = GGML_TYPES.get(t.type);
  if (!traits || t.shape.length === 0) return 0;
  const elements = t.shape.reduce<bigint>((p, d) => p * BigInt(d), 1n);
  const ne0 = BigInt(t.shape[0]!);
  if (ne0 % BigInt(traits.blockSize) !== 0n) return 0;
  const bytes = (elements / BigInt(traits.blockSize)) * BigInt(traits.typeSize);
  return bytes > BigInt(Number.MAX_SAFE_INTEGER) ? 0 : Number(bytes);
}

export function encodeHeader(spec: HeaderSpec): EncodedHeader {
  const version = spec.version ?? 3;
  const w = new HeaderWriter(version === 1 ? 4 : 8);
  const alignment = alignmentOf(spec.metadata);
  w.bytes(encoder.encode("GGUF"));
  w.u32(version);
  const tensorCount = w.length;
  w.size(spec.tensorCountOverride ?? BigInt(spec.tensors.length));
  const keyCount = w.length;
  w.size(spec.keyCountOverride ?? BigInt(spec.metadata.length));

  const entries: FieldMap["entries"] = [];
  for (const e of spec.metadata) {
    const key = w.length;
    w.string(e.key);
    const type = w.length;
    w.u32(e.rawType ?? TYPE_IDS[e.value.type]);
    const value = w.length;
    w.value(e.value);
    entries.push({ key, type, value });
  }

  const placements: { offset: number; bytes: number }[] = [];
  const tensorFields: FieldMap["tensors"] = [];
  let next = 0;
  for (const t of spec.tensors) {
    const bytes = writeTensorBytes(t);
    const offset = t.offset ?? BigInt(next);
    placements.push({ offset: Number(offset), bytes });
    next = Math.max(next, alignUp(Number(offset) + bytes, alignment));
    const name = w.length;
    w.string(t.name);
    const nDims = w.length;
    w.u32(t.shape.length);
    const dims = w.length;
    for (const d of t.shape) w.size(d);
    const type = w.length;
    w.u32(t.type);
    const off = w.length;
    w.u64(offset);
    tensorFields.push({ name, nDims, dims, type, offset: off });
  }
  const dataOffset = alignUp(w.length, alignment);
  while (w.length < dataOffset) w.u8(0);
  return {
    bytes: w.result(),
    alignment,
    dataOffset,
    placements,
    dataBytes: spec.tensors.length === 0 ? 0 : next,
    fields: { tensorCount, keyCount, entries, tensors: tensorFields },
  };
}

// ─── whole files ──────────────────────────────────────────────────────────────

/** Fills `dst` with bytes [start, start + dst.length) of tensor `index`. */
export type TensorFiller = (index: number, start: number, dst: Uint8Array) => void;

export interface WriteFileOptions {
  /** Leave the data section as a hole (reads as zeros, takes no disk): for layout-only tests. */
  readonly sparse?: boolean;
  /** Bytes generated per write call. */
  readonly chunkBytes?: number;
}

/**
 * Writes header and data to `path` atomically (a temporary file renamed into
 * place), so an interrupted run never leaves a half-written fixture behind.
 */
export function writeGgufFile(path: string, header: EncodedHeader, fill: TensorFiller, options: WriteFileOptions = {}): number {
  const total = header.dataOffset + header.dataBytes;
  const tmp = `${path}.partial-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    writeAll(fd, header.bytes, 0);
    if (!options.sparse) {
      const chunk = new Uint8Array(options.chunkBytes ?? 8 << 20);
      header.placements.forEach((p, i) => {
        for (let start = 0; start < p.bytes; start += chunk.length) {
          const dst = chunk.subarray(0, Math.min(chunk.length, p.bytes - start));
          fill(i, start, dst);
          writeAll(fd, dst, header.dataOffset + p.offset + start);
        }
      });
    }
    ftruncateSync(fd, total);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  return total;
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}
