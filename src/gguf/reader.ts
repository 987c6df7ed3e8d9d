// Reads a GGUF header: magic, version, metadata and tensor infos, and derives
// the data-section offset and each tensor's absolute offset and byte size.
//
// The header is read through Bun.file slices into a window that grows as the
// parse needs it; tensor data is never read. The parse goes item by item (the
// header, one key-value pair, one tensor info); an item that runs past the
// window throws NeedMore, the window grows, and that item alone is read again.

import { readSync, statSync } from "node:fs";
import { Cursor, NeedMore, truncatedClaim, Window } from "./cursor.ts";
import { corrupt, GgufError } from "./errors.ts";
import { isByteSwappedVersion, isGgufMagic, notGguf, SUPPORTED_VERSIONS } from "./magic.ts";
import { readString, readValue, readValueType, type StringScan } from "./metadata-reader.ts";
import { GgufFile, type GgufTensorInfo } from "./gguf-file.ts";
import { readTensorInfo, type RawTensorInfo } from "./tensor-info-reader.ts";
import type { GgufValue } from "./values.ts";

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

export interface ReadOptions {
  /** Bytes of the first read; the window doubles from there. */
  initialWindow?: number;
  /** The file's path, for messages, when `source` is a Blob (e.g. Bun.file(fd) of an open file). */
  path?: string;
}

/**
 * A file already open: the header and then the tensor data are read through the
 * same descriptor, with no window for the path to change in between. (Bun.file(fd)
 * reads from the descriptor's position, not from the slice's start, so it cannot
 * be used for the re-reads of a growing window.)
 */
export interface OpenFile {
  readonly fd: number;
  readonly size: number;
}

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
  const blob = typeof source === "string" ? openFile(source) : source;
  const state = new ParseState(blob.size);
  let window = new Window(new Uint8Array(0), blob.size);
  let wanted = Math.min(blob.size, options.initialWindow ?? 1 << 20);
  for (;;) {
    window = await grow(blob, window, wanted);
    try {
      state.advance(window);
      break;
    } catch (e) {
      if (!(e instanceof NeedMore)) throw e;
      wanted = Math.min(blob.size, Math.max(e.end + (1 << 20), window.end * 2));
    }
  }
  return state.finish(path);
}

function openFile(path: string) {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new GgufError("FILE_NOT_FOUND", "no such file", -1, "check the path; `bun run load` with no arguments lists the models it can find");
    throw new GgufError("NOT_READABLE", `the file cannot be read (${code})`, -1, "check the file's permissions");
  }
  if (st.isDirectory()) throw new GgufError("IS_A_DIRECTORY", "this is a directory, not a GGUF file", -1, "pass the path of the .gguf file inside it");
  if (!st.isFile()) throw new GgufError("NOT_READABLE", "this is not a regular file", -1, "pass the path of a .gguf file");
  return Bun.file(path);
}

/**
 * A larger window: [0, end) read again in one slice. Copying the old window into
 * a new buffer costs more than the read (the copy faults in fresh pages twice).
 */
async function grow(blob: Blob | OpenFile, window: Window, end: number): Promise<Window> {
  if (end <= window.end) return window;
  let bytes: Uint8Array;
  try {
    bytes = "fd" in blob ? readPrefix(blob.fd, end) : new Uint8Array(await blob.slice(0, end).arrayBuffer());
  } catch (e) {
    throw new GgufError("NOT_READABLE", `the file cannot be read: ${(e as Error).message}`, window.end, "check the file's permissions and the disk");
  }
  if (bytes.length < end) throw new GgufError("NOT_READABLE", "the file shrank while it was read", bytes.length, "make sure nothing else writes the file, and try again");
  return new Window(bytes, window.fileSize);
}

/** Bytes [0, end) of an open file (fewer if it ends first), read at explicit positions. */
function readPrefix(fd: number, end: number): Uint8Array {
  const bytes = new Uint8Array(end);
  let done = 0;
  while (done < end) {
    const n = readSync(fd, bytes, done, end - done, done);
    if (n === 0) break;
    done += n;
  }
  return done === end ? bytes : bytes.subarray(0, done);
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
  readonly tensorNames = new Set<string>();
  /** Where the next item starts. */
  pos = 0;
  private headerDone = false;

  constructor(readonly fileSize: number) {}

  private partial: StringScan | null = null;

  advance(window: Window): void {
    const c = new Cursor(window, this.sizeWidth);
    c.pos = this.pos;
    c.partial = this.partial;
    try {
      this.advanceItems(c);
    } finally {
      this.partial = c.partial;
    }
  }

  private advanceItems(c: Cursor): void {
    if (!this.headerDone) {
      this.readHeader(c);
      this.headerDone = true;
      this.pos = c.pos;
    }
    while (this.metadata.size < this.keyCount) {
      this.readKeyValue(c);
      this.pos = c.pos;
    }
    while (this.tensors.length < this.tensorCount) {
      this.readTensor(c);
      this.pos = c.pos;
    }
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
    const key = readString(c, `metadata key ${index}`, MAX_KEY_BYTES);
    if (key.length === 0) throw corrupt("EMPTY_KEY", `metadata key ${index} is empty`, at);
    if (this.metadata.has(key)) throw corrupt("DUPLICATE_KEY", `metadata key '${key}' appears twice`, at);
    const type = readValueType(c, `'${key}'`);
    const value = readValue(c, type, `'${key}'`);
    this.metadata.set(key, value);
    this.keyOffsets.set(key, at);
  }

  private readTensor(c: Cursor): void {
    const info = readTensorInfo(c, this.tensors.length);
    if (this.tensorNames.has(info.name)) throw corrupt("DUPLICATE_TENSOR", `tensor ${info.name} appears twice`, info.infoOffset);
    this.tensorNames.add(info.name);
    this.tensors.push(info);
  }

  // ─── the data section ───────────────────────────────────────────────────────

  finish(path: string | null): GgufFile {
    const alignment = this.alignment();
    const headerBytes = this.pos;
    const dataOffset = Math.ceil(headerBytes / alignment) * alignment;
    const tensors = this.tensors.map((t) => this.place(t, dataOffset, alignment));
    checkOverlaps(tensors);
    return new GgufFile({ path, fileSize: this.fileSize, version: this.version, alignment, headerBytes, dataOffset, metadata: this.metadata, keyOffsets: this.keyOffsets, tensors });
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
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (cur.offset < prev.offset + prev.bytes) {
      throw corrupt("OVERLAPPING_TENSORS", `tensor ${cur.name} (bytes ${cur.offset}..${cur.offset + cur.bytes}) overlaps tensor ${prev.name} (bytes ${prev.offset}..${prev.offset + prev.bytes})`, cur.infoOffset);
    }
  }
}
