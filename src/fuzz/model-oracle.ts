// What checkModel must answer for an edited model (model-fuzz.ts), decided
// from the model's final tensors and keys against the registry's rules: a
// required tensor or key gone, an expected tensor reshaped or of a type its
// role forbids, block_count changed, a tensor past the last layer, a tensor the
// architecture does not use (llama.cpp refuses those) — not ok. Only keys no
// rule reads changed — ok, with no warning. Anything else is free; checkModel
// must still not throw.

import type { TensorRole } from "../arch/index.ts";
import { GGML_TYPES, GgmlType, type GgufValue } from "../gguf/index.ts";
import type { EditState, ModelCase, ModelSeed } from "./model-fuzz.ts";
import { judge, type Verdict } from "./oracle.ts";

/** Keys no registry rule reads: changing them must not change the verdict. */
const HARMLESS_KEYS = new Set([
  "general.type", "general.name", "general.version", "general.finetune", "general.size_label", "general.file_type", "general.quantization_version",
  "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.eos_token_id",
  "tokenizer.ggml.padding_token_id", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template",
]);

/** Keys every model needs, after `<arch>.`. */
const REQUIRED_KEYS = ["embedding_length", "block_count", "attention.head_count", "feed_forward_length", "context_length", "attention.layer_norm_rms_epsilon"];

const integerOf = (value: GgufValue | undefined): number | undefined => {
  if (!value) return undefined;
  if (value.type === "u64" || value.type === "i64") return Number(value.value);
  if (value.type === "u8" || value.type === "i8" || value.type === "u16" || value.type === "i16" || value.type === "u32" || value.type === "i32") return value.value;
  return undefined;
};

export function layerCount(seed: ModelSeed): number {
  return integerOf(seed.metadata.find((e) => e.key === `${seed.arch}.block_count`)?.value)!;
}

function allowedType(role: TensorRole, type: GgmlType): boolean {
  const float = type === GgmlType.F32 || type === GgmlType.F16 || type === GgmlType.BF16;
  return role === "norm" || role === "bias" || role === "factors" ? float : GGML_TYPES.get(type)?.weight === true;
}

/** llama.cpp's shape rule: the same dimensions, and any further ones 1. */
const sameShape = (now: readonly number[], orig: readonly number[]) => orig.every((d, i) => now[i] === d) && now.slice(orig.length).every((d) => d === 1) && now.length >= orig.length;

export type Expectation =
  | { readonly kind: "must-fail"; readonly reasons: readonly string[] }
  | { readonly kind: "must-pass" }
  | { readonly kind: "free" };

/** What checkModel must answer for the edited model, from its final tensors and keys. */
export function expectation(s: EditState): Expectation {
  const { seed } = s;
  const reasons: string[] = [];
  const byName = new Map(s.tensors.map((t) => [t.name, t]));
  const key = (k: string) => s.metadata.find((e) => e.key === k)?.value;
  for (const orig of seed.tensors) {
    const now = byName.get(orig.name);
    const spec = seed.expected.get(orig.name)!;
    if (!now) {
      if (!spec.optional) reasons.push(`required tensor ${orig.name} dropped`);
      continue;
    }
    if (!sameShape(now.shape, orig.shape)) reasons.push(`${orig.name} reshaped`);
    if (!allowedType(spec.role, now.type)) reasons.push(`${orig.name} is ${GGML_TYPES.get(now.type)!.name}, not allowed for a ${spec.role}`);
  }
  const arch = key("general.architecture");
  if (arch?.type !== "string" || arch.value !== seed.arch) reasons.push("general.architecture changed");
  for (const k of REQUIRED_KEYS) if (!key(`${seed.arch}.${k}`)) reasons.push(`required key ${seed.arch}.${k} dropped`);
  const layers = key(`${seed.arch}.block_count`);
  if (layers && integerOf(layers) !== layerCount(seed)) reasons.push(`block_count changed to ${layers.type} ${String(layers.type === "array" ? "[…]" : layers.value)}`);
  for (const t of s.tensors) {
    const layer = /^blk\.(\d+)\./.exec(t.name);
    if (layer && Number(layer[1]) >= layerCount(seed)) reasons.push(`${t.name} is in a layer past block_count ${layerCount(seed)}`);
  }
  for (const t of s.tensors.filter((x) => !seed.expected.has(x.name))) {
    const layer = /^blk\.(\d+)\./.exec(t.name);
    // (a tensor in a layer past block_count is already a reason)
    if (!(layer && Number(layer[1]) >= layerCount(seed))) reasons.push(`${t.name} is not a tensor of the architecture`);
  }
  if (reasons.length > 0) return { kind: "must-fail", reasons };

  const unchanged = s.tensors.length === seed.tensors.length && seed.tensors.every((o) => {
    const now = byName.get(o.name);
    return now !== undefined && now.type === o.type && now.shape.every((d, i) => d === o.shape[i]) && now.shape.length === o.shape.length;
  });
  const harmless = [...s.touchedKeys].every((k) => HARMLESS_KEYS.has(k));
  return unchanged && harmless ? { kind: "must-pass" } : { kind: "free" };
}

// ─── one case ─────────────────────────────────────────────────────────────────

export type ModelVerdict =
  | Exclude<Verdict, { kind: "parsed" }>
  | { readonly kind: "ok" | "not-ok" }
  /** checkModel answered, but not what the registry's rules demand. */
  | { readonly kind: "wrong-verdict"; readonly problem: string };

export async function judgeModel(c: ModelCase): Promise<ModelVerdict> {
  const v = await judge({ head: c.bytes, dataBytes: c.dataBytes });
  if (v.kind !== "parsed") return v;
  const { check } = v;
  const x = c.expectation;
  if (x.kind === "must-fail" && check.ok) return { kind: "wrong-verdict", problem: `checkModel says ok, but ${x.reasons.join("; ")}` };
  if (x.kind === "must-pass") {
    if (!check.ok) return { kind: "wrong-verdict", problem: `checkModel says not ok (${check.problems.map((p) => p.message).join("; ")}), but only keys no rule reads changed` };
    if (check.warnings.length > 0) return { kind: "wrong-verdict", problem: `checkModel warns (${check.warnings.join("; ")}) about a model whose tensors are unchanged` };
  }
  return { kind: check.ok ? "ok" : "not-ok" };
}
