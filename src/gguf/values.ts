// Metadata values as read from a GGUF file. The value-type ids are the GGUF
// spec's `gguf_type`; scalars keep their exact width (u64/i64 as bigint), arrays
// are typed arrays, string arrays decode lazily (see StringArray), and an array
// of arrays (the spec allows it; llama.cpp's reader does not) holds GgufArrays.

export enum GgufValueType {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
}

export type ScalarTypeName = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "u64" | "i64" | "f32" | "f64" | "bool" | "string";
export type ValueTypeName = ScalarTypeName | "array";

export const VALUE_TYPE_NAMES: Readonly<Record<GgufValueType, ValueTypeName>> = {
  [GgufValueType.U8]: "u8",
  [GgufValueType.I8]: "i8",
  [GgufValueType.U16]: "u16",
  [GgufValueType.I16]: "i16",
  [GgufValueType.U32]: "u32",
  [GgufValueType.I32]: "i32",
  [GgufValueType.F32]: "f32",
  [GgufValueType.BOOL]: "bool",
  [GgufValueType.STRING]: "string",
  [GgufValueType.ARRAY]: "array",
  [GgufValueType.U64]: "u64",
  [GgufValueType.I64]: "i64",
  [GgufValueType.F64]: "f64",
};

/** Bytes one value of a fixed-width type takes; strings and arrays take at least their length field. */
export const FIXED_VALUE_BYTES: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.U8]: 1,
  [GgufValueType.I8]: 1,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.U16]: 2,
  [GgufValueType.I16]: 2,
  [GgufValueType.U32]: 4,
  [GgufValueType.I32]: 4,
  [GgufValueType.F32]: 4,
  [GgufValueType.U64]: 8,
  [GgufValueType.I64]: 8,
  [GgufValueType.F64]: 8,
};

export type NumberTypeName = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";

export type GgufScalar =
  | { readonly type: NumberTypeName; readonly value: number }
  | { readonly type: "u64" | "i64"; readonly value: bigint }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "string"; readonly value: string };

export type ArrayItems =
  | { readonly itemType: "u8"; readonly items: Uint8Array }
  | { readonly itemType: "i8"; readonly items: Int8Array }
  | { readonly itemType: "u16"; readonly items: Uint16Array }
  | { readonly itemType: "i16"; readonly items: Int16Array }
  | { readonly itemType: "u32"; readonly items: Uint32Array }
  | { readonly itemType: "i32"; readonly items: Int32Array }
  | { readonly itemType: "f32"; readonly items: Float32Array }
  | { readonly itemType: "f64"; readonly items: Float64Array }
  | { readonly itemType: "u64"; readonly items: BigUint64Array }
  | { readonly itemType: "i64"; readonly items: BigInt64Array }
  /** 0 or 1 each. */
  | { readonly itemType: "bool"; readonly items: Uint8Array }
  | { readonly itemType: "string"; readonly items: StringArray }
  | { readonly itemType: "array"; readonly items: readonly GgufArray[] };

export type GgufArray = { readonly type: "array"; readonly length: number } & ArrayItems;

export type GgufValue = GgufScalar | GgufArray;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * The bytes string arrays view. A reader points it at its window, then at each
 * larger read of the same file that replaces it, so an old window is freed
 * instead of being kept alive by the arrays read from it.
 */
export interface ByteSource {
  bytes: Uint8Array;
}

/**
 * An array of strings that decodes each one only when asked. A GGUF tokenizer
 * holds ~300k strings; decoding them all would cost more than parsing the rest
 * of the header, and most callers only need the count. The bytes were validated
 * as UTF-8 when the file was read.
 */
export class StringArray {
  constructor(
    private readonly source: ByteSource,
    /** Where string offsets count from in `source.bytes`. */
    private readonly base: number,
    /** base + starts[i] .. + lengths[i] are the bytes of string i. */
    private readonly starts: Uint32Array,
    private readonly lengths: Uint32Array,
  ) {}

  /** Build one from strings or raw UTF-8 byte strings (for writers). */
  static from(items: readonly (string | Uint8Array)[]): StringArray {
    const encoded = items.map((s) => (typeof s === "string" ? encoder.encode(s) : s));
    const total = encoded.reduce((n, b) => n + b.length, 0);
    const bytes = new Uint8Array(total);
    const starts = new Uint32Array(encoded.length);
    const lengths = new Uint32Array(encoded.length);
    let at = 0;
    encoded.forEach((b, i) => {
      bytes.set(b, at);
      starts[i] = at;
      lengths[i] = b.length;
      at += b.length;
    });
    return new StringArray({ bytes }, 0, starts, lengths);
  }

  get length(): number {
    return this.lengths.length;
  }

  get(i: number): string {
    if (!Number.isInteger(i) || i < 0 || i >= this.lengths.length) throw new RangeError(`index ${i} out of 0..${this.lengths.length - 1}`);
    return utf8.decode(this.rawBytes(i));
  }

  /** The UTF-8 bytes of string i, without decoding them (a view: do not modify). */
  rawBytes(i: number): Uint8Array {
    const start = this.base + this.starts[i]!;
    return this.source.bytes.subarray(start, start + this.lengths[i]!);
  }

  /** Byte length of string i, without decoding it. */
  byteLength(i: number): number {
    return this.lengths[i] ?? 0;
  }

  *[Symbol.iterator](): IterableIterator<string> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  toArray(): string[] {
    const out = new Array<string>(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.get(i);
    return out;
  }
}

/** The shortest decimal that reads back as the same float32 (1e-6, not 9.999999974752427e-7). */
export function shortestF32(x: number): number {
  if (!Number.isFinite(x)) return x;
  for (let p = 1; p <= 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

/** A short human rendering of a value; arrays show their first `maxItems` items (and so do arrays inside them). */
export function describeValue(v: GgufValue, maxItems = 6): string {
  switch (v.type) {
    case "string":
      return JSON.stringify(v.value.length > 120 ? `${v.value.slice(0, 117)}...` : v.value);
    case "u64":
    case "i64":
      return v.value.toString();
    case "bool":
      return String(v.value);
    case "f32":
      return String(shortestF32(v.value));
    case "array": {
      const shown: string[] = [];
      const n = Math.min(v.length, maxItems);
      for (let i = 0; i < n; i++) shown.push(describeItem(v, i, maxItems));
      const more = v.length > n ? `, … ${v.length - n} more` : "";
      return `[${shown.join(", ")}${more}]`;
    }
    default:
      return String(v.value);
  }
}

/** One item; an array inside an array shows its own first `maxItems` items. */
function describeItem(a: GgufArray, i: number, maxItems: number): string {
  switch (a.itemType) {
    case "string": {
      const s = a.items.get(i);
      return JSON.stringify(s.length > 24 ? `${s.slice(0, 21)}...` : s);
    }
    case "array":
      return describeValue(a.items[i]!, maxItems);
    case "bool":
      return String(a.items[i] === 1);
    case "f32":
      return String(shortestF32(a.items[i]!));
    default:
      return String(a.items[i]);
  }
}
