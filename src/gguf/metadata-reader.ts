// Reading one metadata value at the cursor. Every length and count is checked
// against the bytes left in the file, then against the header's budget
// (limits.ts), before anything is allocated or read; every string is checked
// to be UTF-8. Arrays may hold arrays, as the spec allows and gguf-py reads
// them, each charged the memory of its object. Values too long for one time
// slice (large copies and decodes, string arrays, arrays of arrays) go a slice
// at a time and resume where they stopped (Cursor.partials).

import type { Cursor, Resumable } from "./cursor.ts";
import { PLAUSIBLE, truncatedClaim } from "./cursor.ts";
import { corrupt } from "./errors.ts";
import { DECODED_STRING_FACTOR, NESTED_ARRAY_BYTES, STRING_INDEX_BYTES } from "./limits.ts";
import { readStringArray } from "./string-array.ts";
import { FIXED_VALUE_BYTES, GgufValueType, VALUE_TYPE_NAMES } from "./values.ts";
import type { GgufArray, GgufValue } from "./values.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** Bytes copied or decoded between two checks of the clock (a few ms on a slow core). */
const SLICE_BYTES = 1 << 20;

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

/** A key or a tensor name: at most `max` bytes, decoded at once. */
export function readName(c: Cursor, what: string, max: number): string {
  const n = stringLength(c, what, max);
  const at = c.pos;
  c.budget.charge(at + n, DECODED_STRING_FACTOR * n, at, what, `is ${n} bytes long`);
  const bytes = c.peek(n, what);
  c.pos += n;
  try {
    return utf8.decode(bytes);
  } catch {
    throw corrupt("BAD_UTF8", `${what} is not valid UTF-8`, at);
  }
}

/** A string value: decoded a slice at a time when it is long. */
function readStringValue(c: Cursor, what: string): string {
  const lengthAt = c.pos;
  const n = stringLength(c, what);
  const at = c.pos;
  c.budget.charge(at + n, DECODED_STRING_FACTOR * n, lengthAt, what, `is a string of ${n.toLocaleString("en-US")} bytes`);
  c.need(n, what);
  if (n <= SLICE_BYTES) {
    c.pos += n;
    try {
      return utf8.decode(c.window.bytes.subarray(at, at + n));
    } catch {
      throw corrupt("BAD_UTF8", `${what} is not valid UTF-8`, at);
    }
  }
  const found = c.partials.get(at);
  const d = found instanceof StringDecode ? found : new StringDecode();
  c.partials.set(at, d);
  try {
    while (d.done < n) {
      const k = Math.min(SLICE_BYTES, n - d.done);
      d.text += d.decoder.decode(c.window.bytes.subarray(at + d.done, at + d.done + k), { stream: true });
      d.done += k;
      if (d.done < n) c.checkpoint();
    }
    d.text += d.decoder.decode();
  } catch (e) {
    if (e instanceof TypeError) throw corrupt("BAD_UTF8", `${what} is not valid UTF-8`, at);
    throw e;
  }
  c.partials.delete(at);
  c.pos = at + n;
  return d.text;
}

/** A string value's decode so far (a rope: appending is cheap). */
class StringDecode implements Resumable {
  readonly kind = "decode";
  readonly decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  text = "";
  done = 0;
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
      return { type: "string", value: readStringValue(c, what) };
    case GgufValueType.ARRAY:
      return readArray(c, what, 1);
  }
}

// ─── arrays ───────────────────────────────────────────────────────────────────

/** An array at the cursor, `depth` arrays deep (1: the value itself). */
function readArray(c: Cursor, what: string, depth: number): GgufArray {
  const limit = c.budget.limits.arrayDepth;
  if (depth > limit) {
    throw corrupt("ARRAY_TOO_DEEP", `${what} is an array ${depth} levels deep; gguf-vram reads arrays nested at most ${limit} deep (no model nests them at all)`, c.pos);
  }
  const itemType = readValueType(c, `the items of ${what}`);
  const lengthAt = c.pos;
  const n = c.size(`the length of ${what}`);
  // Each item takes at least its fixed width, or its length field (and an item type, for an array): check before allocating.
  const minItem = FIXED_VALUE_BYTES[itemType] ?? (itemType === GgufValueType.ARRAY ? 4 + c.sizeWidth : c.sizeWidth);
  if (n * BigInt(minItem) > BigInt(c.fileRemaining)) {
    if (n <= PLAUSIBLE.arrayItems) throw truncatedClaim(what, `it has ${n} items of at least ${minItem} bytes`, c.fileRemaining, lengthAt);
    throw corrupt("ARRAY_TOO_LONG", `${what} claims ${n} items of at least ${minItem} bytes; only ${c.fileRemaining} bytes are left in the file`, lengthAt);
  }
  const length = Number(n);
  const typeName = VALUE_TYPE_NAMES[itemType];
  const items = `${length.toLocaleString("en-US")} ${typeName === "array" ? "arrays" : typeName === "string" ? "strings" : `${typeName} items`}`;
  const claim = `is an array of ${items}`;
  switch (itemType) {
    case GgufValueType.STRING:
      c.budget.charge(c.pos + length * c.sizeWidth, length * STRING_INDEX_BYTES, lengthAt, what, claim);
      return { type: "array", length, itemType: "string", items: readStringArray(c, length, what) };
    case GgufValueType.ARRAY:
      c.budget.charge(c.pos + length * minItem, length * NESTED_ARRAY_BYTES, lengthAt, what, claim);
      return { type: "array", length, itemType: "array", items: readArrays(c, length, what, depth) };
    default: {
      // A numeric array is one aligned copy of its bytes.
      const bytes = length * minItem;
      c.budget.charge(c.pos + bytes, bytes, lengthAt, what, claim);
      const copy = readBytes(c, bytes, what, itemType === GgufValueType.BOOL);
      return numbers(itemType, length, copy);
    }
  }
}

function numbers(itemType: GgufValueType, length: number, b: Uint8Array): GgufArray {
  switch (itemType) {
    case GgufValueType.U8: return { type: "array", length, itemType: "u8", items: b };
    case GgufValueType.I8: return { type: "array", length, itemType: "i8", items: new Int8Array(b.buffer) };
    case GgufValueType.U16: return { type: "array", length, itemType: "u16", items: new Uint16Array(b.buffer) };
    case GgufValueType.I16: return { type: "array", length, itemType: "i16", items: new Int16Array(b.buffer) };
    case GgufValueType.U32: return { type: "array", length, itemType: "u32", items: new Uint32Array(b.buffer) };
    case GgufValueType.I32: return { type: "array", length, itemType: "i32", items: new Int32Array(b.buffer) };
    case GgufValueType.F32: return { type: "array", length, itemType: "f32", items: new Float32Array(b.buffer) };
    case GgufValueType.F64: return { type: "array", length, itemType: "f64", items: new Float64Array(b.buffer) };
    case GgufValueType.U64: return { type: "array", length, itemType: "u64", items: new BigUint64Array(b.buffer) };
    case GgufValueType.I64: return { type: "array", length, itemType: "i64", items: new BigInt64Array(b.buffer) };
    default: return { type: "array", length, itemType: "bool", items: b };
  }
}

/** A copy of `n` bytes at the cursor (aligned, so typed arrays can view it), a slice at a time; bools checked as they go. */
function readBytes(c: Cursor, n: number, what: string, bools: boolean): Uint8Array {
  c.need(n, what);
  const at = c.pos;
  if (n <= SLICE_BYTES) {
    if (bools) checkBools(c.window.bytes.subarray(at, at + n), 0, at, what);
    return c.take(n, what);
  }
  const found = c.partials.get(at);
  const copy = found instanceof ByteCopy ? found : new ByteCopy(n);
  c.partials.set(at, copy);
  while (copy.done < n) {
    const k = Math.min(SLICE_BYTES, n - copy.done);
    const slice = c.window.bytes.subarray(at + copy.done, at + copy.done + k);
    if (bools) checkBools(slice, copy.done, at, what);
    copy.bytes.set(slice, copy.done);
    copy.done += k;
    if (copy.done < n) c.checkpoint();
  }
  c.partials.delete(at);
  c.pos = at + n;
  return copy.bytes;
}

/** Items `first`… of a bool array (at byte `at`) are each 0 or 1. */
function checkBools(items: Uint8Array, first: number, at: number, what: string): void {
  for (let i = 0; i < items.length; i++) {
    if (items[i]! > 1) throw corrupt("BAD_BOOL", `item ${first + i} of ${what} is a bool holding ${items[i]}; a bool is 0 or 1`, at + first + i);
  }
}

class ByteCopy implements Resumable {
  readonly kind = "copy";
  readonly bytes: Uint8Array;
  done = 0;
  constructor(n: number) {
    this.bytes = new Uint8Array(n);
  }
}

/** The `n` arrays of an array of arrays, `depth` deep, one at a time. */
function readArrays(c: Cursor, n: number, what: string, depth: number): GgufArray[] {
  const at = c.pos;
  const found = c.partials.get(at);
  const scan = found instanceof NestedScan ? found : new NestedScan(at);
  c.partials.set(at, scan);
  // The retry charged this array's own count again; what its finished items charged is added back.
  c.budget.pending += scan.charged;
  while (scan.items.length < n) {
    c.pos = scan.p;
    const before = c.budget.pending;
    const item = readArray(c, `item ${scan.items.length} of ${what}`, depth + 1);
    scan.charged += c.budget.pending - before;
    scan.items.push(item);
    scan.p = c.pos;
    if (scan.items.length < n) c.checkpoint();
  }
  c.partials.delete(at);
  c.pos = scan.p;
  return scan.items;
}

/** The arrays of an array of arrays read so far, where the next starts, and what they charged. */
class NestedScan implements Resumable {
  readonly kind = "nested";
  readonly items: GgufArray[] = [];
  charged = 0;
  constructor(public p: number) {}
}
