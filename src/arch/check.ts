// Checks a parsed GGUF file against the registry as strictly as llama.cpp
// loads it: the architecture is known, its keys read with their exact types,
// every tensor llama.cpp requires is present, every tensor present has the
// shape llama.cpp demands (extra trailing dimensions of 1 aside) and a type
// its role allows, and no tensor is left over (llama.cpp refuses a file with
// tensors it does not use). A few files llama.cpp loads and then aborts on
// (heads that do not share key/value heads evenly, no attention at all, …)
// are refused here up front, and so is a file llama.cpp cannot even open: one
// with a metadata array of arrays (valid GGUF, which this reader reads).

import { GgmlType, GGML_TYPES, ggmlTypeName, type GgufFile } from "../gguf/index.ts";
import { readConfig, type ModelConfig } from "./config.ts";
import { FAMILIES, type ArchFamily } from "./families/index.ts";
import type { ModelProblem } from "./problems.ts";
import type { ExpectedTensor, TensorRole } from "./tensors.ts";

export interface ModelCheck {
  readonly architecture: string | null;
  readonly family: ArchFamily | null;
  readonly config: ModelConfig | null;
  /** The LM head is token_embd.weight (no output.weight in the file). */
  readonly tiedHead: boolean;
  readonly expected: readonly ExpectedTensor[];
  readonly problems: readonly ModelProblem[];
  /** Not wrong, but worth saying. */
  readonly warnings: readonly string[];
  readonly ok: boolean;
}

const FLOAT_TYPES = new Set([GgmlType.F32, GgmlType.F16, GgmlType.BF16]);

/** Norms, biases and factors are floats (F32 as converters write them); weights may be any weight type. */
export function allowedTypes(role: TensorRole): (type: GgmlType) => boolean {
  if (role === "norm" || role === "bias" || role === "factors") return (type) => FLOAT_TYPES.has(type);
  return (type) => GGML_TYPES.get(type)?.weight === true;
}

const LAYER = /^blk\.(\d+)\./;
/** Tensors named in a message before "and N more". */
const LISTED = 4;

/** A file's tensors and metadata as the check sees them (a split set's, merged). */
export type CheckedFile = Pick<GgufFile, "get" | "tensor" | "tensors" | "metadata">;

export function checkModel(gguf: CheckedFile): ModelCheck {
  const problems: ModelProblem[] = [];
  const warnings: string[] = [];
  const done = (architecture: string | null, family: ArchFamily | null, config: ModelConfig | null, expected: readonly ExpectedTensor[] = [], tiedHead = false): ModelCheck => ({
    architecture, family, config, tiedHead, expected, problems, warnings, ok: problems.length === 0,
  });

  checkNestedArrays(gguf, problems);
  const archValue = gguf.get("general.architecture");
  if (!archValue) {
    problems.push({ code: "MISSING_KEY", key: "general.architecture", message: "the metadata has no general.architecture, so the model family is unknown" });
    return done(null, null, null);
  }
  if (archValue.type !== "string") {
    problems.push({ code: "BAD_KEY", key: "general.architecture", message: `general.architecture is a ${archValue.type}; expected a string` });
    return done(null, null, null);
  }
  const arch = archValue.value;
  const family = FAMILIES.get(arch);
  if (!family) {
    problems.push({ code: "UNKNOWN_ARCHITECTURE", key: "general.architecture", message: `architecture '${arch}' is not in the registry (known: ${[...FAMILIES.keys()].join(", ")}); --unchecked loads it anyway, checking only the GGUF format` });
    return done(arch, null, null);
  }
  const config = readConfig(gguf, arch, problems, family);
  if (!config) return done(arch, family, null);
  // Every layer has tensors: a block_count beyond the tensor count is wrong, and
  // building its table would cost time and memory the file's size does not bound.
  if (config.layers > gguf.tensors.length) {
    const key = `${arch}.block_count`;
    problems.push({ code: "LAYER_COUNT_MISMATCH", key, message: `${key} is ${config.layers}, but the file has only ${gguf.tensors.length} tensors: not even one per layer` });
    return done(arch, family, config);
  }

  const names = new Set(gguf.tensors.map((t) => t.name));
  const expected = family.tensors(config, (name) => names.has(name));
  const layerProblem = checkLayerCount(gguf, config, problems);
  const missing: string[] = [];
  for (const e of expected) {
    const found = gguf.tensor(e.name);
    if (!found) {
      // A wrong layer count already explains the missing layers.
      if (!e.optional && !(layerProblem && LAYER.test(e.name))) missing.push(e.name);
      continue;
    }
    checkShape(e, found.shape, problems);
    if (!allowedTypes(e.role)(found.type)) {
      const allowed = e.role === "norm" || e.role === "bias" || e.role === "factors" ? "a float type (F32, F16 or BF16)" : "a float or quantized weight type";
      problems.push({ code: "BAD_TYPE", tensor: e.name, message: `${e.name} is ${ggmlTypeName(found.type)}; a ${e.role} tensor must be ${allowed}` });
    }
  }
  for (const name of missing) problems.push({ code: "TENSOR_MISSING", tensor: name, message: `${name} is missing; every ${arch} model has it` });

  // llama.cpp counts the tensors it used and refuses the file when one is left over.
  const known = new Set(expected.map((e) => e.name));
  const extra = gguf.tensors.filter((t) => !known.has(t.name) && !(layerProblem && LAYER.test(t.name))).map((t) => t.name);
  if (extra.length > 0) {
    const listed = extra.slice(0, LISTED).join(", ");
    const more = extra.length > LISTED ? ` and ${extra.length - LISTED} more` : "";
    const why = family.output === "tied" && extra.includes("output.weight") ? ` (a ${arch} model's head is always its embedding)` : "";
    problems.push({ code: "EXTRA_TENSOR", tensor: extra[0], message: `${listed}${more} ${extra.length === 1 ? "is" : "are"} not part of a ${arch} model${why}; llama.cpp refuses a file with tensors it does not use` });
  }
  const tied = family.output === "tied" || (family.output === "optional" && !gguf.tensor("output.weight") && gguf.tensor("token_embd.weight") !== undefined);
  return done(arch, family, config, expected, tied);
}

/**
 * ggml's gguf.cpp reads an array's item type and refuses GGUF_TYPE_ARRAY there
 * ("key '…' has invalid GGUF type 9"), so llama.cpp fails to open the file,
 * whatever the key. The spec allows the nesting, and gguf-py reads it.
 */
function checkNestedArrays(gguf: CheckedFile, problems: ModelProblem[]): void {
  for (const [key, value] of gguf.metadata) {
    if (value.type !== "array" || value.itemType !== "array") continue;
    problems.push({ code: "NESTED_ARRAY", key, message: `${key} is an array of arrays, which llama.cpp's GGUF reader (gguf.cpp) refuses: llama.cpp cannot open this file (--unchecked loads it here anyway)` });
  }
}

/** llama.cpp's rule: each expected dimension equal, any further dimensions of the file's 1. */
function checkShape(e: ExpectedTensor, shape: readonly number[], problems: ModelProblem[]): void {
  const want = e.shape.map((d) => d.size);
  const same = want.every((n, i) => shape[i] === n) && shape.slice(want.length).every((n) => n === 1);
  if (same) return;
  const reasons = e.shape.filter((d, i) => shape[i] !== d.size).map((d) => d.why);
  const why = shape.length === want.length ? ` (${reasons.join("; ")})` : ` (${want.length} dimension${want.length > 1 ? "s" : ""}: ${e.shape.map((d) => d.why).join(", ")})`;
  problems.push({ code: "BAD_SHAPE", tensor: e.name, message: `${e.name} has shape [${shape.join(", ")}]; expected [${want.join(", ")}]${why}` });
}

/** True when the layers the tensors name disagree with block_count (each problem recorded once). */
function checkLayerCount(gguf: CheckedFile, config: ModelConfig, problems: ModelProblem[]): boolean {
  const layers = new Set<number>();
  for (const t of gguf.tensors) {
    const m = LAYER.exec(t.name);
    if (m) layers.add(Number(m[1]));
  }
  const key = `${config.architecture}.block_count`;
  const beyond = [...layers].filter((l) => l >= config.layers).sort((a, b) => a - b);
  const absent: number[] = [];
  for (let l = 0; l < config.layers; l++) if (!layers.has(l)) absent.push(l);
  const list = (ls: number[]) => (ls.length > 6 ? `${ls.slice(0, 6).join(", ")} … (${ls.length} layers)` : ls.join(", "));
  if (beyond.length > 0) problems.push({ code: "LAYER_COUNT_MISMATCH", key, message: `${key} is ${config.layers}, but the file has tensors for layer${beyond.length > 1 ? "s" : ""} ${list(beyond)} too` });
  if (absent.length > 0) problems.push({ code: "LAYER_COUNT_MISMATCH", key, message: `${key} is ${config.layers}, but the file has no tensors for layer${absent.length > 1 ? "s" : ""} ${list(absent)}` });
  return beyond.length > 0 || absent.length > 0;
}
