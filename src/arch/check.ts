// Checks a parsed GGUF file against the registry: the architecture is known,
// its config reads and validates, and every expected tensor is present with
// the expected shape and a type allowed for its role.

import { GgmlType, GGML_TYPES, ggmlTypeName, type GgufFile } from "../gguf/index.ts";
import { readConfig, type ModelConfig } from "./config.ts";
import { FAMILIES, type ExpectedTensor, type TensorRole } from "./families.ts";
import type { ModelProblem } from "./problems.ts";

export interface ModelCheck {
  readonly architecture: string | null;
  readonly config: ModelConfig | null;
  /** The LM head is token_embd.weight (no output.weight in the file). */
  readonly tiedHead: boolean;
  readonly expected: readonly ExpectedTensor[];
  readonly problems: readonly ModelProblem[];
  /** Not wrong, but worth saying: tensors the architecture does not use. */
  readonly warnings: readonly string[];
  readonly ok: boolean;
}

/** Norms and biases are F32 in every GGUF converter's output; weights may be any weight type. */
export function allowedTypes(role: TensorRole): (type: GgmlType) => boolean {
  if (role === "norm" || role === "bias") return (type) => type === GgmlType.F32;
  return (type) => GGML_TYPES.get(type)?.weight === true;
}

const LAYER = /^blk\.(\d+)\./;

export function checkModel(gguf: GgufFile): ModelCheck {
  const problems: ModelProblem[] = [];
  const warnings: string[] = [];
  const done = (architecture: string | null, config: ModelConfig | null, expected: ExpectedTensor[] = [], tiedHead = false): ModelCheck => ({
    architecture, config, tiedHead, expected, problems, warnings, ok: problems.length === 0,
  });

  const archValue = gguf.get("general.architecture");
  if (!archValue) {
    problems.push({ code: "MISSING_KEY", key: "general.architecture", message: "the metadata has no general.architecture, so the model family is unknown" });
    return done(null, null);
  }
  if (archValue.type !== "string") {
    problems.push({ code: "BAD_KEY", key: "general.architecture", message: `general.architecture is a ${archValue.type}; expected a string` });
    return done(null, null);
  }
  const arch = archValue.value;
  const family = FAMILIES.get(arch);
  if (!family) {
    problems.push({ code: "UNKNOWN_ARCHITECTURE", key: "general.architecture", message: `architecture '${arch}' is not in the registry (known: ${[...FAMILIES.keys()].join(", ")})` });
    return done(arch, null);
  }
  const config = readConfig(gguf, arch, problems);
  if (!config) return done(arch, null);
  // Every layer has tensors: a block_count beyond the tensor count is wrong, and
  // building its table would cost time and memory the file's size does not bound.
  if (config.layers > gguf.tensors.length) {
    const key = `${arch}.block_count`;
    problems.push({ code: "LAYER_COUNT_MISMATCH", key, message: `${key} is ${config.layers}, but the file has only ${gguf.tensors.length} tensors: not even one per layer` });
    return done(arch, config);
  }

  const expected = family.tensors(config);
  checkLayerCount(gguf, config, problems);
  const layerProblem = problems.length > 0;
  for (const e of expected) {
    const found = gguf.tensor(e.name);
    if (!found) {
      // A wrong layer count already explains the missing layers.
      if (!e.optional && !(layerProblem && LAYER.test(e.name))) {
        problems.push({ code: "TENSOR_MISSING", tensor: e.name, message: `${e.name} is missing; every ${arch} model has it` });
      }
      continue;
    }
    const want = e.shape.map((d) => d.size);
    if (found.shape.length !== want.length || found.shape.some((n, i) => n !== want[i])) {
      const reasons = e.shape.filter((d, i) => found.shape[i] !== d.size).map((d) => d.why);
      const why = found.shape.length === want.length ? ` (${reasons.join("; ")})` : ` (${want.length} dimension${want.length > 1 ? "s" : ""}: ${e.shape.map((d) => d.why).join(", ")})`;
      problems.push({ code: "BAD_SHAPE", tensor: e.name, message: `${e.name} has shape [${found.shape.join(", ")}]; expected [${want.join(", ")}]${why}` });
    }
    if (!allowedTypes(e.role)(found.type)) {
      const allowed = e.role === "norm" || e.role === "bias" ? "F32" : "a float or quantized weight type";
      problems.push({ code: "BAD_TYPE", tensor: e.name, message: `${e.name} is ${ggmlTypeName(found.type)}; a ${e.role} tensor must be ${allowed}` });
    }
  }

  const known = new Set(expected.map((e) => e.name));
  for (const t of gguf.tensors) {
    if (!known.has(t.name) && !(layerProblem && LAYER.test(t.name))) warnings.push(`${t.name} is not part of the ${arch} architecture and will be loaded as an extra tensor`);
  }
  return done(arch, config, expected, !gguf.tensor("output.weight") && gguf.tensor("token_embd.weight") !== undefined);
}

function checkLayerCount(gguf: GgufFile, config: ModelConfig, problems: ModelProblem[]): void {
  const layers = new Set<number>();
  for (const t of gguf.tensors) {
    const m = LAYER.exec(t.name);
    if (m) layers.add(Number(m[1]));
  }
  const key = `${config.architecture}.block_count`;
  const beyond = [...layers].filter((l) => l >= config.layers).sort((a, b) => a - b);
  const absent: number[] = [];
  for (let l = 0; l < config.layers; l++) if (!layers.has(l)) absent.push(l);
  if (beyond.length > 0) {
    problems.push({ code: "LAYER_COUNT_MISMATCH", key, message: `${key} is ${config.layers}, but the file has tensors for layer${beyond.length > 1 ? "s" : ""} ${beyond.join(", ")} too` });
  }
  if (absent.length > 0) {
    const list = absent.length > 6 ? `${absent.slice(0, 6).join(", ")} … (${absent.length} layers)` : absent.join(", ");
    problems.push({ code: "LAYER_COUNT_MISMATCH", key, message: `${key} is ${config.layers}, but the file has no tensors for layer${absent.length > 1 ? "s" : ""} ${list}` });
  }
}
