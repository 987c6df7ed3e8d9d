// A read cursor over a window of a file's first bytes. Reads are pure and
// little-endian; when a read runs past the window, the cursor throws NeedMore
// and the reader grows the window (see reader.ts) and retries the item. When
// the parse has run for a time slice it throws PAUSE at a point where it has
// made progress; the reader lets the event loop run, then retries the item.
// Either way a long value resumes where it stopped (Cursor.partials).

import { corrupt } from "./errors.ts";
import type { HeaderBudget } from "./limits.ts";
import type { ByteSource } from "./values.ts";

/** Thrown (not an Error: no stack to capture) when the window ends before `end`. */
export class NeedMore {
  constructor(readonly end: number) {}
}

/** Thrown when the time slice is over; the item is retried after the event loop has run. */
export const PAUSE = Symbol("pause");

/** The progress of one long value (a string array, a copy, an array of arrays), kept for the item's retry. */
export interface Resumable {
  readonly kind: "strings" | "copy" | "decode" | "nested";
}

/**
 * A claim (a count or a length) that does not fit in the rest of the file is
 * either a truncated file or a corrupt field. Below these limits it is taken for
 * truncation, the far likelier cause; above them no real file makes it.
 */
export const PLAUSIBLE = { stringBytes: 1n << 30n, arrayItems: 1n << 28n } as const;

export function truncatedClaim(what: string, claim: string, left: number, at: number) {
  return corrupt("TRUNCATED", `the file ends inside ${what}: ${claim}, but only ${left} bytes are left`, at, TRUNCATED_HINT);
}

const TRUNCATED_HINT = "the file is incomplete (an interrupted download or copy?); fetch it again";

export class Window {
  readonly view: DataView;
  constructor(
    /** The file's bytes from offset 0 to `bytes.length`. */
    readonly bytes: Uint8Array,
    readonly fileSize: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get end(): number {
    return this.bytes.length;
  }
}

export class Cursor {
  pos = 0;
  constructor(
    public window: Window,
    /** 4 for GGUF v1 (u32 counts and lengths), 8 from v2 on. */
    public sizeWidth: 4 | 8,
    readonly budget: HeaderBudget,
    /** What string arrays view their bytes through: the window, and each larger one that replaces it. */
    readonly source: ByteSource,
    /** Long values suspended by NeedMore or PAUSE, by where their data starts; the item's retry resumes them. */
    readonly partials: Map<number, Resumable>,
    /** performance.now() at which the time slice ends. */
    private readonly deadline = Infinity,
  ) {}

  /** Throws PAUSE when the time slice is over. Call it only after progress that a retry keeps. */
  checkpoint(): void {
    if (performance.now() > this.deadline) throw PAUSE;
  }

  get fileSize(): number {
    return this.window.fileSize;
  }

  /** Bytes left in the file (not the window) after the cursor. */
  get fileRemaining(): number {
    return this.window.fileSize - this.pos;
  }

  /** Make sure `n` bytes from the cursor are in the window. */
  need(n: number, what: string): void {
    const end = this.pos + n;
    if (end <= this.window.end) return;
    if (end > this.window.fileSize) {
      throw corrupt("TRUNCATED", `the file ends inside ${what}: ${n} bytes needed, ${Math.max(0, this.fileRemaining)} left`, this.pos, TRUNCATED_HINT);
    }
    // The window never grows past the header's bound: no header within it reaches there.
    if (end > this.budget.limits.headerBytes) throw this.budget.pastHeader(this.pos, what);
    throw new NeedMore(end);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.window.bytes[this.pos++]!;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.window.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(what: string): bigint {
    this.need(8, what);
    const v = this.window.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A count or length field: u32 in v1, u64 after. Returned as a bigint until checked. */
  size(what: string): bigint {
    return this.sizeWidth === 8 ? this.u64(what) : BigInt(this.u32(what));
  }

  /** Copy `n` bytes out of the window (the copy is aligned, so typed arrays can view it). */
  take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.window.bytes.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** View `n` bytes of the window without copying. */
  peek(n: number, what: string): Uint8Array {
    this.need(n, what);
    return this.window.bytes.subarray(this.pos, this.pos + n);
  }
}
