// Reads a GGUF header: magic, version, metadata and tensor infos, and derives
// the data-section offset and each tensor's absolute offset and byte size.
//
// The header is read asynchronously, a few MiB at a time, into a window that
// grows as the parse needs it (header-bytes.ts); tensor data is never read. The
// parse goes item by item (the header, one key-value pair, one tensor info); an
// item that runs past the window throws NeedMore, the window grows, and that
// item alone is read again. Every SLICE_MS the parse lets the event loop run,
// so a server reading a large header keeps serving; a long value resumes where
// it stopped. What a header may cost is bounded (limits.ts).

import { Cursor, NeedMore, PAUSE, truncatedClaim, type Resumable, type Window } from "./cursor.ts";
import { corrupt, GgufError } from "./errors.ts";
import { HEADER_LIMITS, HeaderBudget, type HeaderLimits } from "./limits.ts";
import { isByteSwappedVersion, isGgufMagic, notGguf, SUPPORTED_VERSIONS } from "./magic.ts";
import { readName, readValue, readValueType } from "./metadata-reader.ts";
import { GgufFile, type GgufTensorInfo } from "./gguf-file.ts";
import { closeFile, HeaderBytes, openPath, type OpenFile } from "./header-bytes.ts";
import { readTensorInfo, type RawTensorInfo } from "./tensor-info-reader.ts";
import type { ByteSource, GgufValue } from "./values.ts";

export const DEFAULT_ALIGNMENT = 32;
/** GGUF keys are at most 65535 bytes (the spec). */
export const MAX_KEY_BYTES = 65_535;
/**
 * What a header may declare. Each key or tensor info becomes objects of a few
 * hundred bytes, against 12–40 bytes in the file, so these bound what a hostile
 * header can cost in memory (about 30 MiB and 250 MiB). Real models have a few
 * dozen keys and at most a few thousand tensors (DeepSeek-V3: 1,025).
 */
export const MAX_METADATA_KEYS = 65_536;
export const MAX_TENSORS = 262_144;
const ALIGNMENT_KEY = "general.alignment";

/** How long the parse runs, by default, before it lets the event loop run. */
const SLICE_MS = 10;

export interface ReadOptions {
  /** Bytes of the first read; the window doubles from there. */
  initialWindow?: number;
  /** The file's path, for messages, when `source` is a Blob (e.g. Bun.file(fd) of an open file). */
  path?: string;
  /** Tighter (or looser) bounds than HEADER_LIMITS, e.g. for a server that reads untrusted files. */
  limits?: Partial<HeaderLimits>;
  /** Milliseconds the parse may run before it lets the event loop run (default 10; 0: at every chance). */
  sliceMs?: number;
}

export type { OpenFile };
type Source = string | Blob | OpenFile;

/** Parse the header of the GGUF file at `source`: a path, an open file, or any Blob such as Bun.file(). */
export async function readGguf(source: Source, options: ReadOptions = {}): Promise<GgufFile> {
  const path = typeof source === "string" ? source : (options.path ?? null);
  try {
    return await parse(source, path, options);
  } catch (e) {
    if (e instanceof GgufError) e.file = path;
    throw e;
  }
}

async function parse(source: Source, path: string | null, options: ReadOptions): Promise<GgufFile> {
  const opened = typeof source === "string" ? openPath(source) : null;
  try {
    return await parseBytes(opened ?? (source as Blob | OpenFile), path, options);
  } finally {
    if (opened) closeFile(opened);
  }
}

async function parseBytes(input: Blob | OpenFile, path: string | null, options: ReadOptions): Promise<GgufFile> {
  const limits = { ...HEADER_LIMITS, ...options.limits };
  const slice = options.sliceMs ?? SLICE_MS;
  const state = new ParseState(input.size, limits, slice);
  // No window reaches past the header's bound: a read past it is refused (Cursor.need).
  const most = Math.min(input.size, limits.headerBytes);
  const bytes = new HeaderBytes(input, most);
  let wanted = Math.min(most, options.initialWindow ?? 1 << 20);
  for (;;) {
    const window = await bytes.readTo(wanted);
    state.source.bytes = window.bytes;
    try {
      state.advance(window, performance.now() + slice);
      break;
    } catch (e) {
      if (e === PAUSE) {
        await nextTurn();
        continue;
      }
      if (!(e instanceof NeedMore)) throw e;
      // e.end may be an estimate past the file; what the item needs is within `most` (checked before NeedMore).
      wanted = Math.min(most, Math.max(e.end + (1 << 20), window.end * 2));
    }
  }
  return state.finish(path);
}

/** Lets timers and I/O callbacks run before the parse goes on. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

// ─── the parse, one item at a time ────────────────────────────────────────────

class ParseState {
  version = 0;
  sizeWidth: 4 | 8 = 8;
  tensorCount = 0;
  keyCount = 0;
  readonly metadata = new Map<string, GgufValue>();
  readonly keyOffsets = new Map<string, number>();
  readonly tensors: RawTensorInfo[] = [];
  /** Each tensor's index, by name: built as the infos are read, so no one step builds it for 262,144 of them. */
  readonly tensorIndex = new Map<string, number>();
  /** Where the next item starts. */
  pos = 0;
  private headerDone = false;
  /** The window's bytes, as the string arrays read from it see them. */
  readonly source: ByteSource = { bytes: new Uint8Array(0) };
  private readonly budget: HeaderBudget;
  /** Long values of the item being read, suspended until its retry. */
  private readonly partials = new Map<number, Resumable>();

  constructor(
    readonly fileSize: number,
    limits: HeaderLimits,
    private readonly sliceMs: number,
  ) {
    this.budget = new HeaderBudget(limits);
  }

  /** Reads items until the header is done; throws NeedMore or PAUSE to be called again. */
  advance(window: Window, deadline: number): void {
    const c = new Cursor(window, this.sizeWidth, this.budget, this.source, this.partials, deadline);
    c.pos = this.pos;
    if (!this.headerDone) {
      this.readHeader(c);
      this.headerDone = true;
      this.pos = c.pos;
    }
    while (this.metadata.size < this.keyCount) {
      this.item(c, () => this.readKeyValue(c));
    }
    while (this.tensors.length < this.tensorCount) {
      this.item(c, () => this.readTensor(c));
    }
  }

  /** One item, from its start (again, after NeedMore or PAUSE); then, maybe, a pause. */
  private item(c: Cursor, read: () => void): void {
    this.budget.startItem();
    read();
    this.budget.commit();
    this.partials.clear();
    this.pos = c.pos;
    c.checkpoint();
  }

  private readHeader(c: Cursor): void {
    if (this.fileSize < 4 || !isGgufMagic(c.peek(Math.min(4, this.fileSize), "the magic"))) {
      throw notGguf(c.window.bytes.subarray(0, Math.min(16, c.window.end)));
    }
    c.pos = 4;
    const version = c.u32("the version");
    if (isByteSwappedVersion(version)) {
      throw corrupt("BIG_ENDIAN", "this GGUF file is big-endian (byte-swapped); gguf-vram reads little-endian files", 4, "convert it with gguf-py's gguf_convert_endian.py (little-endian is what every GPU host uses)");
    }
    if (!SUPPORTED_VERSIONS.includes(version)) {
      throw corrupt("UNSUPPORTED_VERSION", `GGUF version ${version} is not supported; this tool reads versions 1 to 3`, 4, "convert the model with a llama.cpp of the matching era");
    }
    this.version = version;
    this.sizeWidth = version === 1 ? 4 : 8;
    c.sizeWidth = this.sizeWidth;
    const tensorsAt = c.pos;
    const tensors = c.size("the tensor count");
    const keysAt = c.pos;
    const keys = c.size("the metadata key count");
    // A tensor info takes at least a name length, a dimension count, one dimension, a type and an offset.
    const minTensor = BigInt(this.sizeWidth + 4 + this.sizeWidth + 4 + 8);
    const minKey = BigInt(this.sizeWidth + 4 + 1);
    const left = BigInt(this.fileSize - c.pos);
    // Within the limits, a count the rest of the file cannot hold is a cut file.
    const claim = (count: bigint, what: string, at: number) => {
      if (count * (what === "tensors" ? minTensor : minKey) > left) throw truncatedClaim(`the ${what === "tensors" ? "tensor infos" : "metadata"}`, `the header claims ${count} ${what}`, Number(left), at);
    };
    const limit = (count: bigint, max: number, what: string, real: string, at: number) => {
      if (count > BigInt(max)) throw corrupt("COUNT_TOO_LARGE", `the header declares ${count} ${what}; gguf-vram reads at most ${max.toLocaleString("en-US")} (${real})`, at, "the file is corrupt or hostile: no model has that many");
    };
    limit(tensors, MAX_TENSORS, "tensors", "the largest models have a few thousand", tensorsAt);
    limit(keys, MAX_METADATA_KEYS, "metadata keys", "a model has a few dozen", keysAt);
    claim(tensors, "tensors", tensorsAt);
    claim(keys, "metadata keys", keysAt);
    if (tensors * minTensor + keys * minKey > left) throw truncatedClaim("the header", `it claims ${tensors} tensors and ${keys} metadata keys`, Number(left), tensorsAt);
    this.tensorCount = Number(tensors);
    this.keyCount = Number(keys);
  }

  private readKeyValue(c: Cursor): void {
    const at = c.pos;
    const index = this.metadata.size;
    const key = readName(c, `metadata key ${index}`, MAX_KEY_BYTES);
    if (key.length === 0) throw corrupt("EMPTY_KEY", `metadata key ${index} is empty`, at);
    if (this.metadata.has(key)) throw corrupt("DUPLICATE_KEY", `metadata key '${key}' appears twice`, at);
    const type = readValueType(c, `'${key}'`);
    this.budget.startValue(c.pos, `'${key}'`);
    const value = readValue(c, type, `'${key}'`);
    this.metadata.set(key, value);
    this.keyOffsets.set(key, at);
  }

  private readTensor(c: Cursor): void {
    const info = readTensorInfo(c, this.tensors.length);
    if (this.tensorIndex.has(info.name)) throw corrupt("DUPLICATE_TENSOR", `tensor ${info.name} appears twice`, info.infoOffset);
    this.tensorIndex.set(info.name, this.tensors.length);
    this.tensors.push(info);
  }

  // ─── the data section ───────────────────────────────────────────────────────

  async finish(path: string | null): Promise<GgufFile> {
    const alignment = this.alignment();
    const headerBytes = this.pos;
    const dataOffset = Math.ceil(headerBytes / alignment) * alignment;
    const tensors: GgufTensorInfo[] = [];
    let deadline = performance.now() + this.sliceMs;
    for (const t of this.tensors) {
      tensors.push(this.place(t, dataOffset, alignment));
      if ((tensors.length & 255) === 0 && performance.now() > deadline) {
        await nextTurn();
        deadline = performance.now() + this.sliceMs;
      }
    }
    checkOverlaps(tensors);
    return new GgufFile({ path, fileSize: this.fileSize, version: this.version, alignment, headerBytes, dataOffset, metadata: this.metadata, keyOffsets: this.keyOffsets, tensors, tensorIndex: this.tensorIndex });
  }

  private alignment(): number {
    const v = this.metadata.get(ALIGNMENT_KEY);
    if (!v) return DEFAULT_ALIGNMENT;
    const at = this.keyOffsets.get(ALIGNMENT_KEY) ?? -1;
    if (v.type !== "u32") throw corrupt("BAD_ALIGNMENT", `${ALIGNMENT_KEY} is a ${v.type}; the spec makes it a u32`, at);
    const a = v.value;
    if (a === 0 || (a & (a - 1)) !== 0) throw corrupt("BAD_ALIGNMENT", `${ALIGNMENT_KEY} is ${a}; it must be a non-zero power of two`, at);
    return a;
  }

  private place(t: RawTensorInfo, dataOffset: number, alignment: number): GgufTensorInfo {
    const where = `tensor ${t.name}`;
    if (t.relativeOffset % BigInt(alignment) !== 0n) {
      throw corrupt("MISALIGNED_TENSOR", `${where} starts at data offset ${t.relativeOffset}, not a multiple of the alignment ${alignment}`, t.infoOffset);
    }
    if (t.bytes > BigInt(this.fileSize)) {
      throw corrupt("TENSOR_OUT_OF_FILE", `${where} has shape [${t.shape.join(", ")}] and needs ${t.bytes} bytes of data; the whole file is ${this.fileSize} bytes`, t.infoOffset);
    }
    const end = BigInt(dataOffset) + t.relativeOffset + t.bytes;
    if (end > BigInt(this.fileSize)) {
      throw corrupt("TENSOR_OUT_OF_FILE", `${where} ends at byte ${end}, past the end of the ${this.fileSize}-byte file`, t.infoOffset, "the file is truncated or its offsets are corrupt; download it again");
    }
    const relativeOffset = Number(t.relativeOffset);
    return {
      name: t.name,
      type: t.type,
      shape: t.shape,
      elements: t.elements,
      relativeOffset,
      offset: dataOffset + relativeOffset,
      bytes: Number(t.bytes),
      infoOffset: t.infoOffset,
      shard: 0,
    };
  }
}

function checkOverlaps(tensors: readonly GgufTensorInfo[]): void {
  // Writers store tensors in offset order; for any other order, a quick test
  // first: sorted starts and sorted ends (native sorts) interleave exactly when
  // no two tensors overlap. Only a file that fails it pays the object sort that
  // names the pair.
  const ordered = tensors.every((t, i) => i === 0 || tensors[i - 1]!.offset <= t.offset);
  if (!ordered && disjoint(tensors)) return;
  const byOffset = ordered ? tensors : [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (cur.offset < prev.offset + prev.bytes) {
      throw corrupt("OVERLAPPING_TENSORS", `tensor ${cur.name} (bytes ${cur.offset}..${cur.offset + cur.bytes}) overlaps tensor ${prev.name} (bytes ${prev.offset}..${prev.offset + prev.bytes})`, cur.infoOffset);
    }
  }
}

/** True when no two of the byte ranges overlap: each start, in order, is at or after the end before it. */
function disjoint(tensors: readonly GgufTensorInfo[]): boolean {
  const starts = new Float64Array(tensors.length);
  const ends = new Float64Array(tensors.length);
  tensors.forEach((t, i) => {
    starts[i] = t.offset;
    ends[i] = t.offset + t.bytes;
  });
  starts.sort();
  ends.sort();
  for (let i = 1; i < starts.length; i++) if (starts[i]! < ends[i - 1]!) return false;
  return true;
}
