// Reading one metadata value at the cursor. Every length and count is checked
// against the bytes left in the file before anything is allocated, and every
// string is checked to be UTF-8. What a value costs in memory stays within a
// small factor of what it takes in the file: numeric arrays are one copy, a
// string array two u32 per string, and arrays of arrays (12 bytes of file for
// an empty one, a JS object in memory) are refused, as ggml refuses them.

import { isUtf8 } from "node:buffer";
import type { Cursor } from "./cursor.ts";
import { NeedMore, PLAUSIBLE, truncatedClaim } from "./cursor.ts";
import { corrupt } from "./errors.ts";
import { FIXED_VALUE_BYTES, GgufValueType, StringArray, VALUE_TYPE_NAMES } from "./values.ts";
import type { GgufArray, GgufValue } from "./values.ts";


const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// ─── strings ──────────────────────────────────────────────────────────────────

/** Read a length field and check that the bytes it announces are in the file (and within `max`). */
function stringLength(c: Cursor, what: string, max?: number): number {
  const at = c.pos;
  const n = c.size(`the length of ${what}`);
  if (n > BigInt(c.fileRemaining)) {
    if (n <= PLAUSIBLE.stringBytes && (max === undefined || n <= BigInt(max))) throw truncatedClaim(what, `it is ${n} bytes long`, c.fileRemaining, at);
    throw corrupt("STRING_TOO_LONG", `${what} claims a length of ${n} bytes; only ${c.fileRemaining} bytes are left in the file`, at);
  }
  if (max !== undefined && n > BigInt(max)) {
    throw corrupt("NAME_TOO_LONG", `${what} is ${n} bytes long; at most ${max} are allowed`, at);
  }
  return Number(n);
}

export function readString(c: Cursor, what: string, max?: number): string {
  const n = stringLength(c, what, max);
  const at = c.pos;
  const bytes = c.peek(n, what);
  c.pos += n;
  try {
    return utf8.decode(bytes);
  } catch {
    throw corrupt("BAD_UTF8", `${what} is not valid UTF-8`, at);
  }
}

// ─── values ───────────────────────────────────────────────────────────────────

export function readValueType(c: Cursor, what: string): GgufValueType {
  const at = c.pos;
  const t = c.u32(`the value type of ${what}`);
  if (!(t in VALUE_TYPE_NAMES)) {
    throw corrupt("BAD_VALUE_TYPE", `${what} has value type ${t}; GGUF defines 0..12`, at, "the file is corrupt, or written by a newer GGUF version than this tool knows");
  }
  return t as GgufValueType;
}

export function readValue(c: Cursor, type: GgufValueType, what: string): GgufValue {
  const v = c.window.view;
  const fixed = FIXED_VALUE_BYTES[type];
  if (fixed !== undefined) c.need(fixed, what);
  const p = c.pos;
  if (fixed !== undefined) c.pos += fixed;
  switch (type) {
    case GgufValueType.U8:
      return { type: "u8", value: v.getUint8(p) };
    case GgufValueType.I8:
      return { type: "i8", value: v.getInt8(p) };
    case GgufValueType.U16:
      return { type: "u16", value: v.getUint16(p, true) };
    case GgufValueType.I16:
      return { type: "i16", value: v.getInt16(p, true) };
    case GgufValueType.U32:
      return { type: "u32", value: v.getUint32(p, true) };
    case GgufValueType.I32:
      return { type: "i32", value: v.getInt32(p, true) };
    case GgufValueType.F32:
      return { type: "f32", value: v.getFloat32(p, true) };
    case GgufValueType.F64:
      return { type: "f64", value: v.getFloat64(p, true) };
    case GgufValueType.U64:
      return { type: "u64", value: v.getBigUint64(p, true) };
    case GgufValueType.I64:
      return { type: "i64", value: v.getBigInt64(p, true) };
    case GgufValueType.BOOL: {
      const b = v.getUint8(p);
      if (b > 1) throw corrupt("BAD_BOOL", `${what} is a bool holding ${b}; a bool is 0 or 1`, p);
      return { type: "bool", value: b === 1 };
    }
    case GgufValueType.STRING:
      return { type: "string", value: readString(c, what) };
    case GgufValueType.ARRAY:
      return readArray(c, what);
  }
}

// ─── arrays ───────────────────────────────────────────────────────────────────

function readArray(c: Cursor, what: string): GgufArray {
  const at = c.pos;
  const itemType = readValueType(c, `the items of ${what}`);
  if (itemType === GgufValueType.ARRAY) {
    throw corrupt("NESTED_ARRAY", `${what} is an array of arrays, which GGUF readers do not accept (ggml refuses it too)`, at, "the file was written by a tool that nests arrays; llama.cpp cannot load it either: write the value as a flat array");
  }
  const lengthAt = c.pos;
  const n = c.size(`the length of ${what}`);
  // Each item takes at least its fixed width, or its length field: check before allocating.
  const minItem = FIXED_VALUE_BYTES[itemType] ?? c.sizeWidth;
  if (n * BigInt(minItem) > BigInt(c.fileRemaining)) {
    if (n <= PLAUSIBLE.arrayItems) throw truncatedClaim(what, `it has ${n} items of at least ${minItem} bytes`, c.fileRemaining, lengthAt);
    throw corrupt("ARRAY_TOO_LONG", `${what} claims ${n} items of at least ${minItem} bytes; only ${c.fileRemaining} bytes are left in the file`, lengthAt);
  }
  const length = Number(n);
  switch (itemType) {
    case GgufValueType.U8:
      return { type: "array", length, itemType: "u8", items: c.take(length, what) };
    case GgufValueType.I8:
      return { type: "array", length, itemType: "i8", items: new Int8Array(c.take(length, what).buffer) };
    case GgufValueType.U16:
      return { type: "array", length, itemType: "u16", items: new Uint16Array(c.take(length * 2, what).buffer) };
    case GgufValueType.I16:
      return { type: "array", length, itemType: "i16", items: new Int16Array(c.take(length * 2, what).buffer) };
    case GgufValueType.U32:
      return { type: "array", length, itemType: "u32", items: new Uint32Array(c.take(length * 4, what).buffer) };
    case GgufValueType.I32:
      return { type: "array", length, itemType: "i32", items: new Int32Array(c.take(length * 4, what).buffer) };
    case GgufValueType.F32:
      return { type: "array", length, itemType: "f32", items: new Float32Array(c.take(length * 4, what).buffer) };
    case GgufValueType.F64:
      return { type: "array", length, itemType: "f64", items: new Float64Array(c.take(length * 8, what).buffer) };
    case GgufValueType.U64:
      return { type: "array", length, itemType: "u64", items: new BigUint64Array(c.take(length * 8, what).buffer) };
    case GgufValueType.I64:
      return { type: "array", length, itemType: "i64", items: new BigInt64Array(c.take(length * 8, what).buffer) };
    case GgufValueType.BOOL: {
      const start = c.pos;
      const items = c.take(length, what);
      const bad = items.findIndex((b) => b > 1);
      if (bad >= 0) throw corrupt("BAD_BOOL", `item ${bad} of ${what} is a bool holding ${items[bad]}; a bool is 0 or 1`, start + bad);
      return { type: "array", length, itemType: "bool", items };
    }
    case GgufValueType.STRING:
      return { type: "array", length, itemType: "string", items: readStringArray(c, length, what) };
  }
}

/**
 * The hot loop of a GGUF header: a tokenizer is ~300k strings. It records where
 * each string is, then checks them all as UTF-8 in one native call over the
 * whole region, length fields included. A length field whose bytes are all
 * ASCII (every length below 128, and most above) acts as a separator: a string
 * that ends inside a multi-byte sequence, or starts with a continuation byte,
 * still fails, so the region is valid UTF-8 exactly when every string is. The
 * few length fields with a byte of 0x80 or more are zeroed for the check and
 * restored after (the window is this reader's private copy of the file).
 */
function readStringArray(c: Cursor, n: number, what: string): StringArray {
  const { bytes, fileSize } = c.window;
  const w = c.sizeWidth;
  const regionStart = c.pos;
  // An array that ran past the window resumes where it stopped (see Cursor.partial).
  const scan = (c.partial?.regionStart === regionStart ? c.partial : null) ?? new StringScan(regionStart, n);
  c.partial = null;
  const stop = scan.run(bytes, fileSize, w);
  if (stop === STOP_TOO_LONG) {
    const p = scan.p;
    const lo = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
    const length = w === 8 ? c.window.view.getBigUint64(p, true) : BigInt(lo >>> 0);
    if (length <= PLAUSIBLE.stringBytes) throw truncatedClaim(`string ${scan.i} of ${what}`, `it is ${length} bytes long`, fileSize - p - w, p);
    throw corrupt("STRING_TOO_LONG", `string ${scan.i} of ${what} claims a length of ${length} bytes; only ${fileSize - p - w} bytes are left in the file`, p);
  }
  if (stop === STOP_WINDOW) {
    if (scan.p + w > fileSize) {
      c.pos = scan.p;
      c.need(w, `the length of string ${scan.i} of ${what}`); // throws TRUNCATED
    }
    c.partial = scan;
    throw new NeedMore(scan.estimateEnd(w));
  }
  const p = scan.p;
  if (p - regionStart > 0xffff_ffff) throw corrupt("STRING_TOO_LONG", `${what} holds more than 4 GiB of strings`, regionStart);
  c.pos = p;
  const region = bytes.subarray(regionStart, p);
  const { starts, lengths } = scan;
  if (!isUtf8Separated(bytes, region, scan.nonAsciiFields, w)) {
    for (let i = 0; i < n; i++) {
      try {
        utf8.decode(region.subarray(starts[i]!, starts[i]! + lengths[i]!));
      } catch {
        throw corrupt("BAD_UTF8", `string ${i} of ${what} is not valid UTF-8`, regionStart + starts[i]!);
      }
    }
  }
  return new StringArray(region, starts, lengths);
}

const STOP_DONE = 0;
const STOP_WINDOW = 1;
const STOP_TOO_LONG = 2;

/** The progress of a string array; kept when the window ends so the retry resumes it. */
export class StringScan {
  readonly starts: Uint32Array;
  readonly lengths: Uint32Array;
  /** Length fields with a byte of 0x80 or more (see isUtf8Separated). */
  readonly nonAsciiFields: number[] = [];
  /** The next string to read, and where its length field is. */
  i = 0;
  p: number;

  constructor(
    readonly regionStart: number,
    readonly n: number,
  ) {
    this.starts = new Uint32Array(n);
    this.lengths = new Uint32Array(n);
    this.p = regionStart;
  }

  /** Records strings until done, the window ends, or a length cannot fit the file. */
  run(bytes: Uint8Array, fileSize: number, w: number): number {
    const { starts, lengths, regionStart, n } = this;
    const end = bytes.length;
    let p = this.p;
    let i = this.i;
    let stop = STOP_DONE;
    for (; i < n; i++) {
      if (p + w > end) {
        stop = STOP_WINDOW;
        break;
      }
      // Byte reads: faster than DataView here, and a length is 4 bytes unless the file is absurd.
      const lo = (bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24)) >>> 0;
      const hi = w === 8 ? bytes[p + 4]! | bytes[p + 5]! | bytes[p + 6]! | bytes[p + 7]! : 0;
      if (hi !== 0 || lo > fileSize - p - w) {
        stop = STOP_TOO_LONG;
        break;
      }
      if (p + w + lo > end) {
        stop = STOP_WINDOW;
        break;
      }
      if ((lo & 0x8080_8080) !== 0) this.nonAsciiFields.push(p);
      p += w;
      starts[i] = p - regionStart;
      lengths[i] = lo;
      p += lo;
    }
    this.p = p;
    this.i = i;
    return stop;
  }

  /** Where the array probably ends, from the average size of the strings read so far. */
  estimateEnd(w: number): number {
    const average = this.i > 0 ? (this.p - this.regionStart) / this.i : w;
    return Math.ceil(this.p + (this.n - this.i) * Math.max(w + 1, average) * 1.05);
  }
}

function isUtf8Separated(bytes: Uint8Array, region: Uint8Array, fields: readonly number[], w: number): boolean {
  const saved = fields.map((f) => bytes.slice(f, f + w));
  for (const f of fields) bytes.fill(0, f, f + w);
  try {
    return isUtf8(region);
  } finally {
    fields.forEach((f, i) => bytes.set(saved[i]!, f));
  }
}
