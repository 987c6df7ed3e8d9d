// Mutators: each changes a copy of a seed file in one way, some blindly (bit
// flips, byte runs, cuts, spliced regions), most through the seed's field map
// (a count inflated to 2^63, a type id swapped for a removed one, an offset
// shifted off the alignment). A case applies one, or a stack of two to four.

import { GGML_TYPES, REMOVED_GGML_TYPES } from "../gguf/index.ts";
import type { Field, FieldKind, SeedFile } from "./corpus.ts";
import type { Prng } from "./prng.ts";

/** The file a case feeds the reader: header bytes, then `dataBytes` zero bytes. */
export interface FuzzInput {
  head: Uint8Array;
  dataBytes: number;
}

export const inputSize = (input: FuzzInput) => input.head.length + input.dataBytes;

interface Context {
  readonly rng: Prng;
  readonly seed: SeedFile;
  readonly input: FuzzInput;
}

/** Changes `ctx.input`; returns what it did, or null when the seed has nothing to aim at. */
type Mutator = (ctx: Context) => string | null;

// ─── values worth writing ─────────────────────────────────────────────────────

const HUGE = [1n << 32n, 1n << 63n, (1n << 64n) - 1n, (1n << 32n) - 1n, 1n << 31n, (1n << 63n) - 1n, 1n << 62n, (1n << 53n) + 1n];
/** Around the reader's plausibility limits (cursor.ts PLAUSIBLE) and name limits: just under is "truncated", just over is "too large". */
const BORDERS = [1n << 24n, (1n << 24n) + 1n, 1n << 28n, (1n << 28n) + 1n, 1n << 30n, (1n << 30n) + 1n, 65_535n, 65_536n, 63n, 64n];
const VALUE_TYPE_IDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const BAD_VALUE_TYPE_IDS = [13, 14, 255, 256, 0x7fff_ffff, 0xffff_ffff];
const GGML_TYPE_IDS = [...GGML_TYPES.keys()] as number[];
const REMOVED_TYPE_IDS = [...REMOVED_GGML_TYPES.keys()];
const UNKNOWN_TYPE_IDS = [40, 41, 64, 255, 0xffff, 0x8000_0000, 0xffff_ffff];
const ALIGNMENTS = [0, 1, 2, 3, 8, 16, 24, 31, 32, 48, 64, 128, 4096, 1 << 20, 0x8000_0000, 0xffff_ffff];

// ─── byte helpers ─────────────────────────────────────────────────────────────

function readUint(b: Uint8Array, at: number, width: number): bigint {
  let v = 0n;
  for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i] ?? 0);
  return v;
}

/** Writes `value` mod 2^(8·width) little-endian; false when the field is no longer in the file. */
function writeUint(b: Uint8Array, at: number, width: number, value: bigint): boolean {
  if (at < 0 || at + width > b.length) return false;
  let v = BigInt.asUintN(width * 8, value);
  for (let i = 0; i < width; i++) {
    b[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return true;
}

function splice(b: Uint8Array, at: number, remove: number, insert: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(b.length - remove + insert.length);
  out.set(b.subarray(0, at));
  out.set(insert, at);
  out.set(b.subarray(at + remove), at + insert.length);
  return out;
}

/** A field of one of `kinds` that the (possibly shortened) head still holds. */
function pickField(ctx: Context, kinds: readonly FieldKind[]): Field | null {
  const present = kinds.filter((k) => (ctx.seed.fields.get(k)?.length ?? 0) > 0);
  if (present.length === 0) return null;
  const f = ctx.rng.pick(ctx.seed.fields.get(ctx.rng.pick(present))!);
  return f.at + f.width <= ctx.input.head.length ? f : null;
}

function setField(ctx: Context, f: Field, value: bigint): string | null {
  if (!writeUint(ctx.input.head, f.at, f.width, value)) return null;
  return `${f.kind}@${f.at} = ${value}`;
}

// ─── blind mutators ───────────────────────────────────────────────────────────

const bitFlips: Mutator = ({ rng, input }) => {
  if (input.head.length === 0) return null;
  const at: number[] = [];
  for (let n = rng.between(1, 8); n > 0; n--) {
    const p = rng.below(input.head.length);
    input.head[p]! ^= 1 << rng.below(8);
    at.push(p);
  }
  return `flip bits at ${at.join(",")}`;
};

const byteRun: Mutator = ({ rng, input }) => {
  if (input.head.length === 0) return null;
  const at = rng.below(input.head.length);
  const len = Math.min(rng.between(1, 32), input.head.length - at);
  const style = rng.pick(["random", "00", "ff", "80", "7f", "repeat"] as const);
  const fill = rng.below(256);
  for (let i = 0; i < len; i++) {
    input.head[at + i] = style === "random" ? rng.below(256) : style === "repeat" ? fill : parseInt(style, 16);
  }
  return `${len} ${style} bytes at ${at}`;
};

const truncate: Mutator = (ctx) => {
  const { rng, input } = ctx;
  let cut: number;
  const f = rng.chance(0.3) ? pickField(ctx, [...ctx.seed.fields.keys()]) : null;
  if (f) cut = f.at + rng.below(f.width + 1);
  else if (rng.chance(0.7)) cut = rng.below(input.head.length + 1);
  else cut = rng.below(inputSize(input) + 1);
  if (cut >= input.head.length) input.dataBytes = cut - input.head.length;
  else {
    input.head = input.head.slice(0, cut);
    input.dataBytes = 0;
  }
  return `truncate to ${cut} bytes`;
};

/** Copy a region elsewhere (inserted or over), or delete one. */
const spliceRegion: Mutator = ({ rng, input }) => {
  const n = input.head.length;
  if (n < 2) return null;
  const from = rng.below(n);
  const len = Math.min(rng.between(1, 64), n - from);
  const to = rng.below(n);
  const op = rng.pick(["insert", "overwrite", "delete"] as const);
  if (op === "delete") {
    input.head = splice(input.head, from, len);
    return `delete ${len} bytes at ${from}`;
  }
  const region = input.head.slice(from, from + len);
  if (op === "insert") input.head = splice(input.head, to, 0, region);
  else input.head.set(region.subarray(0, n - to), to);
  return `${op} ${len} bytes from ${from} at ${to}`;
};

// ─── structure-aware mutators ─────────────────────────────────────────────────

const SIZE_KINDS: readonly FieldKind[] = ["tensorCount", "keyCount", "keyLength", "stringLength", "arrayLength", "itemLength", "nameLength", "dim"];

/** A count or length set to a huge value, a border of the reader's limits, the bytes left, or off by a little. */
const inflateSize: Mutator = (ctx) => {
  const { rng, input } = ctx;
  const f = pickField(ctx, SIZE_KINDS);
  if (!f) return null;
  const old = readUint(input.head, f.at, f.width);
  const left = BigInt(inputSize(input) - f.at - f.width);
  const value = [
    () => rng.pick(HUGE),
    () => rng.pick(BORDERS),
    () => rng.pick([left, left + 1n, left - 1n, BigInt(inputSize(input)), left / 2n + 1n]),
    () => old + BigInt(rng.between(-8, 8)),
    () => old * 2n + 1n,
    () => rng.u64(),
    () => BigInt(rng.u32()),
  ][rng.weighted([4, 2, 2, 2, 1, 1, 1])]!();
  return setField(ctx, f, value);
};

const swapValueType: Mutator = (ctx) => {
  const f = pickField(ctx, ["valueType", "itemType"]);
  if (!f) return null;
  return setField(ctx, f, BigInt(ctx.rng.chance(0.6) ? ctx.rng.pick(VALUE_TYPE_IDS) : ctx.rng.pick(BAD_VALUE_TYPE_IDS)));
};

const swapGgmlType: Mutator = (ctx) => {
  const f = pickField(ctx, ["ggmlType"]);
  if (!f) return null;
  const pool = [GGML_TYPE_IDS, REMOVED_TYPE_IDS, UNKNOWN_TYPE_IDS][ctx.rng.weighted([2, 1, 1])]!;
  return setField(ctx, f, BigInt(ctx.rng.pick(pool)));
};

/** A tensor offset shifted by ±1..±alignment or by whole alignments, or set near the ends of u64. */
const shiftOffset: Mutator = (ctx) => {
  const { rng, input, seed } = ctx;
  const f = pickField(ctx, ["offset"]);
  if (!f) return null;
  const old = readUint(input.head, f.at, 8);
  const a = BigInt(seed.alignment);
  const sign = rng.chance(0.5) ? 1n : -1n;
  const value = [
    () => old + sign * BigInt(rng.between(1, seed.alignment)),
    () => old + sign * a * BigInt(rng.between(1, 4)),
    () => rng.pick([(1n << 64n) - 1n, (1n << 64n) - a, 1n << 63n, (1n << 63n) - a, 1n << 32n, 0n]),
    () => (BigInt(inputSize(input)) / a) * a,
  ][rng.weighted([4, 2, 2, 1])]!();
  return setField(ctx, f, value);
};

const setDimensions: Mutator = (ctx) => {
  const { rng, input } = ctx;
  const f = pickField(ctx, ["nDims", "dim"]);
  if (!f) return null;
  if (f.kind === "nDims") return setField(ctx, f, BigInt(rng.pick([0, 1, 2, 3, 4, 5, 8, 0x8000_0000, 0xffff_ffff])));
  const old = readUint(input.head, f.at, f.width);
  return setField(ctx, f, rng.pick([0n, 1n, 2n, old * 2n, old + 1n, old - 1n, 1n << 32n, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n]));
};

const setBool: Mutator = (ctx) => {
  const f = pickField(ctx, ["bool"]);
  return f ? setField(ctx, f, BigInt(ctx.rng.between(2, 255))) : null;
};

const setAlignment: Mutator = (ctx) => {
  const f = pickField(ctx, ["alignment"]);
  if (!f) return null;
  return setField(ctx, f, BigInt(ctx.rng.chance(0.8) ? ctx.rng.pick(ALIGNMENTS) : ctx.rng.u32()));
};

/** Another version: 1 ↔ 2/3 changes the width of every count and length; a byte-swapped one reads as big-endian. */
const setVersion: Mutator = ({ rng, input }) => {
  const version = rng.pick([0, 1, 2, 3, 4, 0x0100_0000, 0x0200_0000, 0x0300_0000, 0xffff_ffff]);
  return writeUint(input.head, 4, 4, BigInt(version)) ? `version = ${version}` : null;
};

/** A whole key-value pair or tensor info copied next to itself (a duplicate), or dropped; the count follows, or not. */
const copyRecord: Mutator = (ctx) => {
  const { rng, input, seed } = ctx;
  if (seed.records.length === 0) return null;
  const r = rng.pick(seed.records);
  if (r.end > input.head.length) return null;
  const drop = rng.chance(0.3);
  input.head = drop ? splice(input.head, r.start, r.end - r.start) : splice(input.head, r.end, 0, input.head.slice(r.start, r.end));
  const count = seed.fields.get(r.kind === "key" ? "keyCount" : "tensorCount")![0]!;
  const adjust = rng.chance(0.8);
  if (adjust) writeUint(input.head, count.at, count.width, readUint(input.head, count.at, count.width) + (drop ? -1n : 1n));
  return `${drop ? "drop" : "duplicate"} ${r.kind} record at ${r.start}..${r.end}${adjust ? `, ${count.kind} follows` : ""}`;
};

/** Bytes of one item of each fixed-width GGUF value type (strings take their length field). */
const ITEM_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
/** Width mutators add at most this much, so a run stays fast (real headers are 6–30 MB; test/fuzz-regressions.test.ts reads an 84 MB one). */
const MAX_WIDENED_BYTES = 1 << 20;

/**
 * Width, not depth: an array gets thousands to a million more items (empty or
 * one-byte strings, empty arrays, zeros), or a key or tensor record is repeated under new
 * names up to past the reader's count limits. What the header costs in memory
 * must stay within a small factor of its size, and reading it within the hang
 * limit.
 */
const widen: Mutator = (ctx) => {
  const { rng, input, seed } = ctx;
  const w = seed.sizeWidth;
  if (rng.chance(0.5)) {
    const f = pickField(ctx, ["arrayLength"]);
    if (!f || f.at < 4) return null;
    const itemType = Number(readUint(input.head, f.at - 4, 4));
    const oneByte = itemType === 8 && rng.chance(0.5);
    // An array's item: an item type and a length, all zeros (an empty u8 array).
    const itemBytes = itemType === 8 ? w + (oneByte ? 1 : 0) : itemType === 9 ? 4 + w : ITEM_BYTES[itemType];
    if (!itemBytes) return null;
    const n = Math.min(rng.pick([1_000, 65_536, 1_000_000]), Math.floor(MAX_WIDENED_BYTES / itemBytes));
    const items = new Uint8Array(n * itemBytes);
    if (itemType === 8) for (let i = 0; i < n; i++) writeUint(items, i * itemBytes, w, oneByte ? 1n : 0n);
    const after = f.at + f.width;
    if (after > input.head.length) return null;
    input.head = splice(input.head, after, 0, items);
    writeUint(input.head, f.at, f.width, readUint(input.head, f.at, f.width) + BigInt(n));
    return `${n} more ${oneByte ? "one-byte strings" : itemType === 8 ? "empty strings" : itemType === 9 ? "empty arrays" : `items of type ${itemType}`} in the array at ${f.at}`;
  }
  if (seed.records.length === 0) return null;
  const r = rng.pick(seed.records);
  if (r.end > input.head.length) return null;
  const record = input.head.slice(r.start, r.end);
  const nameAt = w; // the key or name starts after its length field
  const nameBytes = Number(readUint(record, 0, w));
  if (nameBytes < 3 || nameAt + nameBytes > record.length) return null;
  const n = Math.min(rng.pick([1_000, 65_537, 262_145]), Math.floor(MAX_WIDENED_BYTES / record.length));
  const copies = new Uint8Array(n * record.length);
  for (let i = 0; i < n; i++) {
    copies.set(record, i * record.length);
    // A new name for each copy: its last three bytes count in base 64 over printable ASCII.
    for (let d = 0, k = i + 1; d < 3; d++, k = Math.floor(k / 64)) copies[i * record.length + nameAt + nameBytes - 1 - d] = 0x30 + (k % 64);
  }
  input.head = splice(input.head, r.end, 0, copies);
  const count = seed.fields.get(r.kind === "key" ? "keyCount" : "tensorCount")![0]!;
  writeUint(input.head, count.at, count.width, readUint(input.head, count.at, count.width) + BigInt(n));
  return `${n} renamed copies of the ${r.kind} record at ${r.start}`;
};

// ─── cases ────────────────────────────────────────────────────────────────────

export const MUTATORS: Readonly<Record<string, { readonly weight: number; readonly apply: Mutator }>> = {
  bitFlips: { weight: 3, apply: bitFlips },
  byteRun: { weight: 2, apply: byteRun },
  truncate: { weight: 2, apply: truncate },
  spliceRegion: { weight: 2, apply: spliceRegion },
  inflateSize: { weight: 4, apply: inflateSize },
  swapValueType: { weight: 2, apply: swapValueType },
  swapGgmlType: { weight: 2, apply: swapGgmlType },
  shiftOffset: { weight: 2, apply: shiftOffset },
  setDimensions: { weight: 2, apply: setDimensions },
  setBool: { weight: 1, apply: setBool },
  setAlignment: { weight: 1, apply: setAlignment },
  setVersion: { weight: 1, apply: setVersion },
  copyRecord: { weight: 2, apply: copyRecord },
  widen: { weight: 0.3, apply: widen }, // about 1 case in 100: each reads up to a megabyte more
};

const NAMES = Object.keys(MUTATORS);
const WEIGHTS = NAMES.map((n) => MUTATORS[n]!.weight);

export interface MutatedCase {
  readonly input: FuzzInput;
  /** What each mutator did, in order. */
  readonly steps: readonly string[];
}

/** One case: a copy of `seed` with one mutation, or (one case in four) a stack of two to four. */
export function mutate(rng: Prng, seed: SeedFile): MutatedCase {
  const input: FuzzInput = { head: seed.head.slice(), dataBytes: seed.dataBytes };
  const ctx: Context = { rng, seed, input };
  const steps: string[] = [];
  const wanted = rng.chance(0.25) ? rng.between(2, 4) : 1;
  for (let tries = 0; steps.length < wanted && tries < 20; tries++) {
    const name = NAMES[rng.weighted(WEIGHTS)]!;
    const step = MUTATORS[name]!.apply(ctx);
    if (step !== null) steps.push(`${name}: ${step}`);
  }
  return { input, steps };
}
