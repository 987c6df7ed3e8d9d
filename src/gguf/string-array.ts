// The hot loop of a GGUF header: a string array (a tokenizer is ~300k strings).
// It records where each string is, a slice of strings at a time, and checks
// each slice as UTF-8 in one native call over its whole region, length fields
// included (see isUtf8Separated). It stops at the end of the window, at the
// value's budget, or when the time slice is over, and resumes from there.

import { isUtf8 } from "node:buffer";
import type { Cursor, Resumable } from "./cursor.ts";
import { NeedMore, PLAUSIBLE, truncatedClaim } from "./cursor.ts";
import { corrupt } from "./errors.ts";
import { StringArray } from "./values.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Strings recorded between two checks of the clock (about a millisecond of work). */
const SLICE_STRINGS = 1 << 16;

const STOP_DONE = 0;
const STOP_WINDOW = 1;
const STOP_TOO_LONG = 2;
const STOP_BUDGET = 3;
const STOP_SLICE = 4;

/**
 * Reads the `n` strings of `what` at the cursor; their budget (their length
 * fields, and two u32 each beyond the file's bytes) is charged by the caller.
 * The bytes stay in the window: the array views them through the cursor's source.
 */
export function readStringArray(c: Cursor, n: number, what: string): StringArray {
  const w = c.sizeWidth;
  const regionStart = c.pos;
  // An array that stopped (window, time) resumes where it did.
  const found = c.partials.get(regionStart);
  const scan = found instanceof StringScan ? found : new StringScan(regionStart, n);
  c.partials.set(regionStart, scan);
  const limit = c.budget.end;
  for (;;) {
    const { bytes, fileSize } = c.window;
    const from = { p: scan.p, i: scan.i };
    const stop = scan.run(bytes, fileSize, w, limit);
    checkUtf8(bytes, scan, from, what, w);
    if (stop === STOP_DONE) break;
    if (stop === STOP_SLICE) {
      c.checkpoint();
      continue;
    }
    const p = scan.p;
    if (p + w > fileSize) {
      c.pos = p;
      c.need(w, `the length of string ${scan.i} of ${what}`); // throws TRUNCATED
    }
    if (stop === STOP_TOO_LONG) {
      const length = w === 8 ? c.window.view.getBigUint64(p, true) : BigInt(c.window.view.getUint32(p, true));
      if (length <= PLAUSIBLE.stringBytes) throw truncatedClaim(`string ${scan.i} of ${what}`, `it is ${length} bytes long`, fileSize - p - w, p);
      throw corrupt("STRING_TOO_LONG", `string ${scan.i} of ${what} claims a length of ${length} bytes; only ${fileSize - p - w} bytes are left in the file`, p);
    }
    if (stop === STOP_BUDGET) {
      const end = p + w > limit || p + w > bytes.length ? p + w : p + w + c.window.view.getUint32(p, true);
      throw c.budget.refusal(end, p, `string ${scan.i.toLocaleString("en-US")} of ${what}`, `ends at byte ${end.toLocaleString("en-US")}`);
    }
    // STOP_WINDOW: the next length field, or its string, is past the window.
    throw new NeedMore(Math.max(scan.wanted, Math.min(scan.estimateEnd(w), limit)));
  }
  c.partials.delete(regionStart);
  c.pos = scan.p;
  if (scan.p - regionStart > 0xffff_ffff) throw corrupt("STRING_TOO_LONG", `${what} holds more than 4 GiB of strings`, regionStart);
  return new StringArray(c.source, regionStart, scan.starts, scan.lengths);
}

/** The progress of a string array; kept when it stops so the retry resumes it. */
export class StringScan implements Resumable {
  readonly kind = "strings";
  readonly starts: Uint32Array;
  readonly lengths: Uint32Array;
  /** Length fields of the slice being read with a byte of 0x80 or more (see isUtf8Separated). */
  nonAsciiFields: number[] = [];
  /** The next string to read, and where its length field is. */
  i = 0;
  p: number;
  /** Where the window must reach for the next string, when it stopped for the window. */
  wanted = 0;

  constructor(
    readonly regionStart: number,
    readonly n: number,
  ) {
    this.starts = new Uint32Array(n);
    this.lengths = new Uint32Array(n);
    this.p = regionStart;
  }

  /** Records strings until done, a slice is read, the window ends, or a length cannot fit the file or `limit`. */
  run(bytes: Uint8Array, fileSize: number, w: number, limit: number): number {
    const { starts, lengths, regionStart, n } = this;
    const end = bytes.length;
    const last = Math.min(n, this.i + SLICE_STRINGS);
    let p = this.p;
    let i = this.i;
    let stop = last === n ? STOP_DONE : STOP_SLICE;
    for (; i < last; i++) {
      if (p + w > end || p + w > limit) {
        stop = p + w > limit ? STOP_BUDGET : STOP_WINDOW;
        this.wanted = p + w;
        break;
      }
      // Byte reads: faster than DataView here, and a length is 4 bytes unless the file is absurd.
      const lo = (bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24)) >>> 0;
      const hi = w === 8 ? bytes[p + 4]! | bytes[p + 5]! | bytes[p + 6]! | bytes[p + 7]! : 0;
      if (hi !== 0 || lo > fileSize - p - w) {
        stop = STOP_TOO_LONG;
        break;
      }
      if (p + w + lo > limit) {
        stop = STOP_BUDGET;
        break;
      }
      if (p + w + lo > end) {
        stop = STOP_WINDOW;
        this.wanted = p + w + lo;
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

/** Checks the strings the last run recorded (from `from`), and names the first that is not UTF-8. */
function checkUtf8(bytes: Uint8Array, scan: StringScan, from: { p: number; i: number }, what: string, w: number): void {
  const fields = scan.nonAsciiFields;
  scan.nonAsciiFields = [];
  if (scan.i === from.i || isUtf8Separated(bytes, bytes.subarray(from.p, scan.p), fields, w)) return;
  for (let i = from.i; i < scan.i; i++) {
    const start = scan.regionStart + scan.starts[i]!;
    try {
      utf8.decode(bytes.subarray(start, start + scan.lengths[i]!));
    } catch {
      throw corrupt("BAD_UTF8", `string ${i} of ${what} is not valid UTF-8`, start);
    }
  }
}

/**
 * A length field whose bytes are all ASCII (every length below 128, and most
 * above) acts as a separator: a string that ends inside a multi-byte sequence,
 * or starts with a continuation byte, still fails, so a region of whole
 * strings and their length fields is valid UTF-8 exactly when every string
 * is — and any cut before a length field is a place to check it in slices. The
 * few length fields with a byte of 0x80 or more are zeroed for the check and
 * restored after (the window is this reader's private copy of the file).
 */
function isUtf8Separated(bytes: Uint8Array, region: Uint8Array, fields: readonly number[], w: number): boolean {
  const saved = fields.map((f) => bytes.slice(f, f + w));
  for (const f of fields) bytes.fill(0, f, f + w);
  try {
    return isUtf8(region);
  } finally {
    fields.forEach((f, i) => bytes.set(saved[i]!, f));
  }
}
