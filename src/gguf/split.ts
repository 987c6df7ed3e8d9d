// Split GGUF models, as llama.cpp's gguf-split writes them: NAME-00001-of-00003.gguf,
// … each a complete GGUF file with its own header and data section. The first
// holds the model's metadata (and may hold no tensor); every shard carries
// split.no (u16, from 0), split.count (u16) and split.tensors.count (i32, the
// whole model's), as gguf-split writes them into each file it makes. This module
// names the files of a set and merges the parsed shards into one model, checking
// them more strictly than llama.cpp does: every shard present, carrying all
// three keys and numbered as its name says, the counts the same in every shard,
// the tensor total right, no tensor twice. (Files of two sets that agree on all
// of that pass: nothing in a shard names the model it came from.)

import { basename } from "node:path";
import { GgufError } from "./errors.ts";
import { GgufFile, type GgufTensorInfo } from "./gguf-file.ts";

export const SPLIT_KEYS = { no: "split.no", count: "split.count", tensors: "split.tensors.count" } as const;

export interface SplitName {
  /** Everything before -00001-of-00003.gguf. */
  readonly prefix: string;
  /** 1-based, as in the name. */
  readonly number: number;
  readonly count: number;
}

const SPLIT_NAME = /^(.+)-(\d{5,})-of-(\d{5,})\.gguf$/;

/** NAME-00002-of-00003.gguf → { prefix NAME, number 2, count 3 }; null for another name. */
export function splitName(path: string): SplitName | null {
  const m = SPLIT_NAME.exec(path);
  if (!m) return null;
  const number = Number(m[2]);
  const count = Number(m[3]);
  return number >= 1 && number <= count ? { prefix: m[1]!, number, count } : null;
}

/** The path of shard `number` (1-based) of a set, as llama.cpp's llama_split_path names it. */
export function shardPath(prefix: string, number: number, count: number): string {
  return `${prefix}-${String(number).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.gguf`;
}

/** split.count of a parsed file: 0 when it is not part of a set (absent, 0 or 1, as llama.cpp reads it). */
export function splitCount(g: GgufFile): number {
  const v = g.get(SPLIT_KEYS.count);
  if (!v) return 0;
  if (v.type !== "u16") throw splitError(g.path, `${SPLIT_KEYS.count} is a ${v.type}; gguf-split writes a u16`);
  return v.value > 1 ? v.value : 0;
}

/** What the checks find: files that do not agree as one set. They cannot tell a set that agrees from another model's. */
const SPLIT_HINT = "the files do not agree as one set written by gguf-split: fetch every file of the set again, or split the model again";

function splitError(path: string | null, problem: string, hint = SPLIT_HINT): GgufError {
  const e = new GgufError("BAD_SPLIT", problem, -1, hint);
  e.file = path;
  return e;
}

/** The u16 / i32 a shard must carry under `key`. */
function shardKey(g: GgufFile, key: string, type: "u16" | "i32"): number {
  const v = g.get(key);
  const name = basename(g.path ?? "the shard");
  if (!v) throw splitError(g.path, `${name} has no ${key}, which every file of a split set carries`);
  if (v.type !== type) throw splitError(g.path, `${key} of ${name} is a ${v.type}; gguf-split writes a ${type}`);
  return v.value as number;
}

/**
 * One model from every shard of a set, in order (shards[i] is number i + 1):
 * the first shard's metadata, every shard's tensors (each knowing its shard).
 */
export function mergeShards(shards: readonly GgufFile[]): GgufFile {
  const first = shards[0]!;
  const count = shards.length;
  const tensors: GgufTensorInfo[] = [];
  const owner = new Map<string, number>();
  shards.forEach((g, i) => {
    const name = basename(g.path ?? `shard ${i + 1}`);
    const no = shardKey(g, SPLIT_KEYS.no, "u16");
    if (no !== i) throw splitError(g.path, `${name} says it is shard ${no + 1} (split.no ${no}), but its name makes it shard ${i + 1}`);
    const n = shardKey(g, SPLIT_KEYS.count, "u16");
    if (n !== count) throw splitError(g.path, `${name} says the set has ${n} files (split.count); the first file says ${count}`);
    if (shardKey(g, SPLIT_KEYS.tensors, "i32") !== shardKey(first, SPLIT_KEYS.tensors, "i32")) {
      throw splitError(g.path, `${name} and the first file disagree on the model's tensor count (split.tensors.count)`);
    }
    if (g.tensors.length === 0 && i > 0) throw splitError(g.path, `${name} holds no tensor; only the first file of a split set may be empty`);
    for (const t of g.tensors) {
      const other = owner.get(t.name);
      if (other !== undefined) throw splitError(g.path, `tensor ${t.name} is in file ${other + 1} and again in file ${i + 1} of the set`);
      owner.set(t.name, i);
      tensors.push({ ...t, shard: i });
    }
  });
  const total = shardKey(first, SPLIT_KEYS.tensors, "i32");
  if (total !== tensors.length) {
    throw splitError(first.path, `the set holds ${tensors.length} tensors, but split.tensors.count says ${total}`);
  }
  return new GgufFile({
    path: first.path,
    fileSize: shards.reduce((n, g) => n + g.fileSize, 0),
    version: first.version,
    alignment: first.alignment,
    headerBytes: first.headerBytes,
    dataOffset: first.dataOffset,
    metadata: first.metadata,
    keyOffsets: first.keyOffsets,
    tensors,
    shards: shards.map((g) => ({ path: g.path, fileSize: g.fileSize, dataOffset: g.dataOffset, tensorCount: g.tensors.length })),
  });
}

/** The error for a shard that is not there. */
export function missingShard(path: string, count: number): GgufError {
  return new GgufError("SPLIT_MISSING_SHARD", `${path} is missing: the model is split into ${count} files`, -1, "download every file of the set into the same folder");
}

/**
 * The whole model `path` belongs to: the file alone, or, when it is a shard
 * (any shard, not only the first), every file of its set, read with `read`
 * and merged. `read` parses one path (the loader passes one that keeps the
 * file open); `first` is `path` already read, when the caller has it.
 */
export async function readModelFiles(path: string, read: (path: string) => Promise<GgufFile>, first?: GgufFile): Promise<GgufFile> {
  const g = first ?? (await read(path));
  const count = splitCount(g);
  if (count === 0) return g;
  const name = splitName(path);
  if (!name || name.count !== count) {
    throw splitError(path, `${basename(path)} is one of ${count} files of a split model (split.count), but its name is not NAME-0000k-of-${String(count).padStart(5, "0")}.gguf, so the others cannot be found`, "give the files the names gguf-split gave them");
  }
  const shards: GgufFile[] = [];
  for (let number = 1; number <= count; number++) {
    const shard = shardPath(name.prefix, number, count);
    if (number === name.number) {
      shards.push(g);
      continue;
    }
    try {
      shards.push(await read(shard));
    } catch (e) {
      if (e instanceof GgufError && e.code === "FILE_NOT_FOUND") throw missingShard(shard, count);
      throw e;
    }
  }
  return mergeShards(shards);
}
