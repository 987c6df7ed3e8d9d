// Finding GGUF models on this machine: paths given, ./models, ./fixtures, the
// current directory, and the usual caches (llama.cpp, Hugging Face, Ollama's
// blobs, which have no extension and are recognised by their magic bytes).

import { closeSync, existsSync, openSync, readdirSync, readSync, realpathSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fixturesDir } from "../fixtures/generate.ts";
import { readGguf, readModelFiles, splitName, ggmlTypeName } from "../gguf/index.ts";

export interface Candidate {
  readonly path: string;
  readonly where: string;
  readonly size: number;
  readonly architecture?: string;
  readonly quantization?: string;
  readonly tensors?: number;
  /** Files the model is in: more than one for a split set (listed once, as its first file). */
  readonly files: number;
  /** Why the header could not be read, when it could not. */
  readonly problem?: string;
}

/** llama.cpp's llama_ftype names, for general.file_type. */
const FILE_TYPES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L",
  14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
  23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M",
  32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
};

export interface SearchPlace {
  readonly dir: string;
  readonly label: string;
  /** Descend into sub-folders (the Hugging Face cache nests snapshots). */
  readonly recursive?: boolean;
  /** Consider files without a .gguf extension (Ollama blobs), by their magic. */
  readonly anyName?: boolean;
}

/**
 * Where the interactive load looks. The fixtures folder is where the synthetic
 * model is written (GGUF_VRAM_FIXTURES, else the project's ./fixtures), so a
 * model written once is found again from any folder.
 */
export function defaultPlaces(cwd = process.cwd(), home = homedir(), fixtures = fixturesDir(), env: Record<string, string | undefined> = process.env): SearchPlace[] {
  const local = join(cwd, "fixtures");
  const fixturesLabel = env.GGUF_VRAM_FIXTURES ? "$GGUF_VRAM_FIXTURES" : resolve(fixtures) === local ? "./fixtures" : fixtures;
  return [
    { dir: join(cwd, "models"), label: "./models" },
    { dir: fixtures, label: fixturesLabel },
    ...(resolve(fixtures) === local ? [] : [{ dir: local, label: "./fixtures" }]),
    { dir: cwd, label: "." },
    { dir: join(home, ".cache", "llama.cpp"), label: "~/.cache/llama.cpp" },
    { dir: join(home, ".cache", "huggingface", "hub"), label: "~/.cache/huggingface/hub", recursive: true },
    { dir: join(home, ".ollama", "models", "blobs"), label: "~/.ollama/models/blobs", anyName: true },
  ];
}

const MAX_DEPTH = 6;
const MAX_FILES = 200;

function hasGgufMagic(path: string): boolean {
  let fd = -1;
  try {
    fd = openSync(path, "r");
    const b = new Uint8Array(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b[0] === 0x47 && b[1] === 0x47 && b[2] === 0x55 && b[3] === 0x46;
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function listFiles(place: SearchPlace, dir = place.dir, depth = 0, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    if (out.length >= MAX_FILES) break;
    const path = join(dir, name);
    let st;
    try {
      st = statSync(path); // follows the Hugging Face cache's symlinks into blobs/
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      if (place.recursive && depth < MAX_DEPTH && name !== "blobs" && name !== "corrupt") listFiles(place, path, depth + 1, out);
    } else if (name.endsWith(".sparse.gguf")) {
      continue; // layout-only test fixtures: their tensor data is a hole
    } else if (st.isFile() && (name.endsWith(".gguf") || (place.anyName && st.size > 1024 && hasGgufMagic(path)))) {
      out.push(path);
    }
  }
  return out;
}

/** What a model is, from its header (all of a split set's); one that does not parse is still listed, with its problem. */
export async function describeFile(path: string, where: string): Promise<Candidate> {
  const size = statSync(path).size;
  try {
    const g = await readModelFiles(path, (p) => readGguf(p));
    const ft = g.get("general.file_type");
    const byType = g.totalsByType();
    const quantization = ft && (ft.type === "u32" || ft.type === "i32") && FILE_TYPES[ft.value] ? FILE_TYPES[ft.value] : byType[0] ? ggmlTypeName(byType[0].type) : undefined;
    return { path, where, size: g.fileSize, architecture: g.string("general.architecture"), quantization, tensors: g.tensors.length, files: g.shards.length };
  } catch (e) {
    return { path, where, size, files: 1, problem: (e as Error).message };
  }
}

/** A split set is one model: keep the first file of each set (or the lowest-numbered one found). */
function oneFilePerSet(files: { path: string; where: string }[]): { path: string; where: string }[] {
  const first = new Map<string, { path: string; where: string; number: number }>();
  const out: { path: string; where: string }[] = [];
  for (const f of files) {
    const name = splitName(f.path);
    if (!name) {
      out.push(f);
      continue;
    }
    const key = `${name.prefix}/${name.count}`;
    const seen = first.get(key);
    if (!seen || name.number < seen.number) first.set(key, { ...f, number: name.number });
  }
  return [...out, ...[...first.values()].map(({ path, where }) => ({ path, where }))];
}

/** Headers read at once; between batches the search notices a Ctrl-C. */
const DESCRIBE_BATCH = 8;

/** Every GGUF file in `places` and `paths`, each once (by real path), described; `signal` ends the search early. */
export async function discoverModels(paths: readonly string[] = [], places: readonly SearchPlace[] = defaultPlaces(), signal?: AbortSignal): Promise<Candidate[]> {
  const seen = new Set<string>();
  const found: { path: string; where: string }[] = [];
  const add = (path: string, where: string) => {
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      return;
    }
    if (seen.has(real)) return;
    seen.add(real);
    found.push({ path, where });
  };
  for (const p of paths) if (existsSync(p)) add(resolve(p), "argument");
  for (const place of places) for (const f of listFiles(place)) add(f, place.label);
  const files = oneFilePerSet(found);
  const described: Candidate[] = [];
  for (let i = 0; i < files.length && !signal?.aborted; i += DESCRIBE_BATCH) {
    described.push(...(await Promise.all(files.slice(i, i + DESCRIBE_BATCH).map((f) => describeFile(f.path, f.where)))));
  }
  return described;
}
