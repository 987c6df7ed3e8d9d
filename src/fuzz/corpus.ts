// The fuzzer's starting files: small valid GGUF headers, each with a map of
// every field in it (counts, lengths, type ids, dimensions, offsets), down to
// the length field of each string inside an array. Mutators aim at these.
//
// A file is its header bytes followed by `dataBytes` zero bytes: the reader
// never reads tensor data, only checks that it fits in the file, so the data
// section needs a size and no content.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GgmlType, readGguf, type GgufArray, type GgufValue } from "../gguf/index.ts";
import { encodeHeader, type EncodedHeader, type HeaderSpec, type WriteEntry, type WriteTensor } from "../gguf/writer.ts";
import { baseFile } from "../fixtures/corrupt.ts";
import { buildModel } from "../fixtures/generate.ts";
import { fixtureModel, modelMetadata, modelTensors } from "../fixtures/models.ts";
import { vocabDir } from "../fixtures/tokenizer.ts";
import { v } from "../fixtures/values.ts";
import { ALL_TYPES } from "../fixtures/all-types.ts";

export type FieldKind =
  | "tensorCount" | "keyCount" // header counts
  | "keyLength" | "valueType" | "stringLength" | "bool" | "alignment" // a key-value pair
  | "itemType" | "arrayLength" | "itemLength" // inside an array value
  | "nameLength" | "nDims" | "dim" | "ggmlType" | "offset"; // a tensor info

export interface Field {
  readonly kind: FieldKind;
  /** Byte offset in the file. */
  readonly at: number;
  readonly width: 1 | 4 | 8;
}

/** A whole key-value pair or tensor info, for mutators that copy records. */
export interface HeaderRecord {
  readonly kind: "key" | "tensor";
  readonly start: number;
  readonly end: number;
}

export interface SeedFile {
  readonly name: string;
  /** The header, padded to the data offset. */
  readonly head: Uint8Array;
  /** Zero bytes after the header: the data section. */
  readonly dataBytes: number;
  readonly version: 1 | 2 | 3;
  /** Width of counts and lengths: 4 in v1, 8 after. */
  readonly sizeWidth: 4 | 8;
  readonly alignment: number;
  readonly fields: ReadonlyMap<FieldKind, readonly Field[]>;
  readonly records: readonly HeaderRecord[];
  /** How often the fuzzer starts from this file, relative to the others. */
  readonly weight: number;
}

// ─── the field map ────────────────────────────────────────────────────────────

const encoder = new TextEncoder();
const byteLength = (s: string | Uint8Array) => (typeof s === "string" ? encoder.encode(s).length : s.length);

/** Bool items of an array get fields too, but only the first few (a token flag array has thousands). */
const BOOL_ITEM_FIELDS = 8;

class FieldCollector {
  readonly fields = new Map<FieldKind, Field[]>();
  constructor(readonly sizeWidth: 4 | 8) {}

  add(kind: FieldKind, at: number, width: 1 | 4 | 8 = this.sizeWidth): void {
    const list = this.fields.get(kind) ?? [];
    list.push({ kind, at, width });
    this.fields.set(kind, list);
  }

  /** Records the fields of a value written at `at`; returns where it ends. */
  value(value: GgufValue, at: number, isAlignment: boolean): number {
    switch (value.type) {
      case "string":
        this.add("stringLength", at);
        return at + this.sizeWidth + byteLength(value.value);
      case "bool":
        this.add("bool", at, 1);
        return at + 1;
      case "array":
        return this.array(value, at);
      case "u8": case "i8": return at + 1;
      case "u16": case "i16": return at + 2;
      case "u32":
        if (isAlignment) this.add("alignment", at, 4);
        return at + 4;
      case "i32": case "f32": return at + 4;
      case "u64": case "i64": case "f64": return at + 8;
    }
  }

  array(a: GgufArray, at: number): number {
    this.add("itemType", at, 4);
    this.add("arrayLength", at + 4);
    let p = at + 4 + this.sizeWidth;
    switch (a.itemType) {
      case "string":
        for (let i = 0; i < a.length; i++) {
          this.add("itemLength", p);
          p += this.sizeWidth + a.items.byteLength(i);
        }
        return p;
      case "array":
        for (const inner of a.items) p = this.array(inner, p);
        return p;
      case "bool":
        for (let i = 0; i < Math.min(a.length, BOOL_ITEM_FIELDS); i++) this.add("bool", p + i, 1);
        return p + a.length;
      default:
        return p + a.items.byteLength;
    }
  }
}

/** The field map of a header the writer encoded from `spec`, checked against the writer's own. */
export function seedFromHeader(name: string, spec: HeaderSpec, header: EncodedHeader, weight: number, head = header.bytes): SeedFile {
  const version = spec.version ?? 3;
  const sizeWidth = version === 1 ? 4 : 8;
  const f = header.fields;
  const c = new FieldCollector(sizeWidth);
  c.add("tensorCount", f.tensorCount);
  c.add("keyCount", f.keyCount);
  const records: HeaderRecord[] = [];
  spec.metadata.forEach((e, i) => {
    const at = f.entries[i]!;
    c.add("keyLength", at.key);
    c.add("valueType", at.type, 4);
    const end = c.value(e.value, at.value, e.key === "general.alignment");
    records.push({ kind: "key", start: at.key, end });
  });
  spec.tensors.forEach((t, i) => {
    const at = f.tensors[i]!;
    c.add("nameLength", at.name);
    c.add("nDims", at.nDims, 4);
    t.shape.forEach((_, d) => c.add("dim", at.dims + d * sizeWidth));
    c.add("ggmlType", at.type, 4);
    c.add("offset", at.offset, 8);
    records.push({ kind: "tensor", start: at.name, end: at.offset + 8 });
  });
  // The walk must land where the writer put each next record: a wrong walk would aim mutations at the wrong bytes.
  records.forEach((r, i) => {
    const next = records[i + 1];
    if (next && next.start !== r.end) throw new Error(`${name}: field walk ends record ${i} at ${r.end}, the writer started the next at ${next.start}`);
  });
  return { name, head, dataBytes: header.dataBytes, version, sizeWidth, alignment: header.alignment, fields: c.fields, records, weight };
}

function seed(name: string, spec: HeaderSpec, weight: number): SeedFile {
  return seedFromHeader(name, spec, encodeHeader(spec), weight);
}

// ─── the files ────────────────────────────────────────────────────────────────

/**
 * A parsed file as a writer spec. Tensors are placed by the writer (packed, in
 * order), as in every file here, so a variant with another alignment stays valid.
 */
async function specOf(bytes: Uint8Array): Promise<HeaderSpec> {
  const g = await readGguf(new Blob([bytes]));
  return {
    version: g.version as 1 | 2 | 3,
    metadata: [...g.metadata].map(([key, value]) => ({ key, value })),
    tensors: g.tensors.map((t) => ({ name: t.name, type: t.type, shape: t.shape })),
  };
}

const ALL_TYPES_TENSORS: readonly WriteTensor[] = [
  { name: "tok", type: GgmlType.Q8_0, shape: [64, 3] },
  { name: "norm", type: GgmlType.F32, shape: [5] },
  { name: "k", type: GgmlType.Q4_K, shape: [256, 2, 1, 3] },
  { name: "bf", type: GgmlType.BF16, shape: [8, 2, 2] },
  { name: "mx", type: GgmlType.MXFP4, shape: [32] },
];

/** The real vocab file the long runs add (`--real`): llama.cpp's SPM vocab, 32,000 tokens with scores and types, 0.7 MB. */
export const REAL_VOCAB_FILE = "ggml-vocab-llama-spm.gguf";

export interface CorpusOptions {
  /** Add the real vocab file, when ../shared/fixtures/real has it. */
  readonly real?: boolean;
}

export async function buildCorpus(options: CorpusOptions = {}): Promise<SeedFile[]> {
  const base = await specOf(baseFile());
  const files: SeedFile[] = [
    seed("base", base, 3),
    seed("base-v1", { ...base, version: 1 }, 2),
    seed("base-v2-align64", { ...base, version: 2, metadata: [...base.metadata, { key: "general.alignment", value: v.u32(64) }] }, 2),
    seed("all-types", { metadata: ALL_TYPES, tensors: ALL_TYPES_TENSORS }, 3),
    seed("all-types-v1", { version: 1, metadata: ALL_TYPES, tensors: ALL_TYPES_TENSORS }, 1),
    seed("empty", { metadata: [], tensors: [] }, 1),
  ];
  for (const name of ["tiny-qwen2-q4_k_m", "tiny-llama-mixed"]) {
    const model = fixtureModel(name);
    const built = await buildModel(model);
    files.push(seedFromHeader(name, { metadata: await modelMetadata(model), tensors: modelTensors(model) }, built.header, 1));
  }
  const realPath = join(vocabDir(), REAL_VOCAB_FILE);
  if (options.real && existsSync(realPath)) {
    const bytes = new Uint8Array(readFileSync(realPath));
    const spec = await specOf(bytes);
    // The file ends at its last value, unpadded (it has no tensors): keep its bytes as they are.
    files.push(seedFromHeader(`real:${REAL_VOCAB_FILE}`, spec, encodeHeader(spec), 1, bytes));
  }
  return files;
}
