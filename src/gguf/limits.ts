// What one header may cost. A format-valid file can declare a metadata value of
// any size; without a bound, reading one of 1 GiB took seconds and gigabytes.
// Each value and the whole header are charged what they take in the file plus
// what the parse allocates beyond those bytes, and refused — before anything
// is allocated — when a length or count alone says they would pass the bound.

import { corrupt, type GgufError } from "./errors.ts";

export interface HeaderLimits {
  /** Bytes one metadata value may take in the file. */
  readonly valueBytes: number;
  /** Bytes the whole header may take in the file plus the memory the parse allocates beyond them. */
  readonly headerBytes: number;
  /** How many arrays deep a value may nest (an array of arrays is 2). */
  readonly arrayDepth: number;
}

const MiB = 1 << 20;

/**
 * The bounds, well above any real model's. The largest values a model holds are
 * its tokenizer's: Gemma 3's 262,144 tokens are about 4 MB, their scores and
 * types 1 MB each, Llama 3's 280,147 merges about 6 MB; whole headers are
 * 6–30 MB. 128 MiB per value is ten times the largest of those, and 256 MiB for
 * the whole header (file bytes and the memory beyond them together) keeps what
 * a hostile header can make the parse hold — its window, read ahead at most to
 * 256 MiB, and what was allocated beyond it — under 512 MiB. Nesting: gguf-py
 * reads any depth; no model nests arrays at all.
 */
export const HEADER_LIMITS: HeaderLimits = { valueBytes: 128 * MiB, headerBytes: 256 * MiB, arrayDepth: 8 };

// ─── what the parse allocates beyond the file's bytes ─────────────────────────

/** A string of an array: its start and length (two u32); its bytes stay in the window. */
export const STRING_INDEX_BYTES = 8;
/**
 * An array inside an array: a JS object and its typed array (124 bytes measured
 * on Bun 1.4, even when empty: 12 bytes of file) and its slot in the parent.
 */
export const NESTED_ARRAY_BYTES = 160;
/** A decoded string (a key or a string value): up to 2 bytes per byte of UTF-8 (ASCII in a UTF-16 string). */
export const DECODED_STRING_FACTOR = 2;
// A numeric array costs its bytes again: the aligned copy its typed array views.

// ─── the budget of one parse ──────────────────────────────────────────────────

const mib = (n: number) => (n % MiB === 0 ? `${n / MiB} MiB` : `${n.toLocaleString("en-US")} bytes`);
const HINT = "the file is corrupt or hostile: a real model's largest value, its tokenizer, is a few MB; if this file is real, convert it again";

/**
 * The header's running cost: positions in the file stand for its bytes, and
 * `committed` + `pending` for the memory allocated beyond them. An item read
 * again from its start (the window grew, or the parse paused) charges again
 * from zero; what resumed scans skip they add back (see NestedScan).
 */
export class HeaderBudget {
  /** Charged by the items read to the end. */
  private committed = 0;
  /** Charged so far by the item being read. */
  pending = 0;
  /** Where the value being read starts in the file, and what to call it. */
  private valueStart = -1;
  private valueName = "";

  constructor(readonly limits: HeaderLimits) {}

  /** An item (a key and its value, or a tensor info) starts: nothing charged yet. */
  startItem(): void {
    this.pending = 0;
    this.valueStart = -1;
  }

  startValue(at: number, name: string): void {
    this.valueStart = at;
    this.valueName = name;
  }

  /** The item is read: its charges stay. */
  commit(): void {
    this.committed += this.pending;
    this.pending = 0;
    this.valueStart = -1;
  }

  /** The furthest file position the value being read may reach, given what is charged. */
  get end(): number {
    const header = this.limits.headerBytes - this.committed - this.pending;
    return this.valueStart < 0 ? header : Math.min(this.valueStart + this.limits.valueBytes, header);
  }

  /**
   * Charges `extra` bytes of memory for a piece of the value whose bytes end at
   * `end` in the file (at least), or refuses it because the value or the header
   * would pass its bound. `what` and `claim` say what the piece is, for the
   * message: "'tokenizer.ggml.tokens'" "is an array of 4,000,000 strings".
   */
  charge(end: number, extra: number, at: number, what: string, claim: string): void {
    this.pending += extra;
    if (end > this.end) throw this.refusal(end, at, what, claim);
  }

  /** The error for a piece that would end at `end`, past what the budget allows. */
  refusal(end: number, at: number, what: string, claim: string): GgufError {
    const { valueBytes, headerBytes } = this.limits;
    if (this.valueStart >= 0 && end - this.valueStart > valueBytes) {
      const size = (end - this.valueStart).toLocaleString("en-US");
      return corrupt("VALUE_TOO_LARGE", `${what} ${claim}: the value would take ${size} bytes of the file; gguf-vram reads metadata values of at most ${mib(valueBytes)}`, at, HINT);
    }
    const cost = (end + this.committed + this.pending).toLocaleString("en-US");
    return corrupt("HEADER_TOO_LARGE", `${what} ${claim}: the header would cost ${cost} bytes (its bytes in the file and the memory reading them takes); gguf-vram reads headers of at most ${mib(headerBytes)}`, at, HINT);
  }

  /** The error for a read past the header's bound in the file alone (a tensor info, a key). */
  pastHeader(at: number, what: string): GgufError {
    return corrupt("HEADER_TOO_LARGE", `the header runs past ${mib(this.limits.headerBytes)} at ${what}; gguf-vram reads headers of at most ${mib(this.limits.headerBytes)}`, at, HINT);
  }
}
