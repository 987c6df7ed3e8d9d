// Model-level fuzzing: well-formed files whose tensors and keys are wrong.
// Starting from the tiny fixture models, a case drops, renames, reshapes and
// retypes tensors, drops keys, changes their values and types, or adds a tensor
// the architecture does not know. What checkModel must answer is model-oracle.ts.

import { FAMILIES, type TensorRole } from "../arch/index.ts";
import { GGML_TYPES, GgmlType, type GgufValue } from "../gguf/index.ts";
import { encodeHeader, type WriteEntry } from "../gguf/writer.ts";
import { fixtureModel, modelMetadata, modelTensors } from "../fixtures/models.ts";
import { v } from "../fixtures/values.ts";
import { expectation, layerCount, type Expectation } from "./model-oracle.ts";
import type { Prng } from "./prng.ts";

export interface TensorSpec {
  readonly name: string;
  readonly type: GgmlType;
  readonly shape: readonly number[];
}

export interface ModelSeed {
  readonly name: string;
  readonly arch: string;
  readonly metadata: readonly WriteEntry[];
  readonly tensors: readonly TensorSpec[];
  /** The registry's table for this model: role, and whether the tensor may be absent. */
  readonly expected: ReadonlyMap<string, { readonly role: TensorRole; readonly optional: boolean }>;
}

export const MODEL_SEEDS = ["tiny-qwen2-q4_k_m", "tiny-llama-mixed"] as const;

export async function modelCorpus(): Promise<ModelSeed[]> {
  return Promise.all(
    MODEL_SEEDS.map(async (name) => {
      const m = fixtureModel(name);
      const table = FAMILIES.get(m.config.architecture)!.tensors(m.config, () => false);
      return {
        name,
        arch: m.config.architecture,
        metadata: await modelMetadata(m),
        tensors: modelTensors(m).map(({ name: n, type, shape }) => ({ name: n, type, shape })),
        expected: new Map(table.map((e) => [e.name, { role: e.role, optional: e.optional === true }])),
      };
    }),
  );
}

// ─── the edits ────────────────────────────────────────────────────────────────

export interface EditState {
  readonly seed: ModelSeed;
  metadata: WriteEntry[];
  tensors: TensorSpec[];
  /** Keys an edit touched (dropped, changed or retyped). */
  readonly touchedKeys: Set<string>;
  extras: number;
}

type Edit = (rng: Prng, s: EditState) => string | null;

const dropTensor: Edit = (rng, s) => {
  if (s.tensors.length === 0) return null;
  const [t] = s.tensors.splice(rng.below(s.tensors.length), 1);
  return `drop tensor ${t!.name}`;
};

const renameTensor: Edit = (rng, s) => {
  if (s.tensors.length === 0) return null;
  const i = rng.below(s.tensors.length);
  const t = s.tensors[i]!;
  const name = [
    () => t.name.replace(/^blk\.\d+\./, `blk.${rng.below(5)}.`),
    () => t.name.replace(/\.(weight|bias)$/, "_x.$1"),
    () => rng.pick(s.tensors).name,
    () => t.name.replace(/^blk\./, ""),
  ][rng.below(4)]!();
  s.tensors[i] = { ...t, name };
  return `rename tensor ${t.name} to ${name}`;
};

const reshapeTensor: Edit = (rng, s) => {
  if (s.tensors.length === 0) return null;
  const i = rng.below(s.tensors.length);
  const t = s.tensors[i]!;
  const shape = [...t.shape];
  const k = rng.below(shape.length);
  const block = GGML_TYPES.get(t.type)?.blockSize ?? 1;
  const op = rng.below(5);
  if (op === 0) shape[k] = shape[k]! * 2;
  else if (op === 1) shape[k] = shape[k]! + (k === 0 ? block : 1);
  else if (op === 2) shape[k] = k === 0 ? Math.max(block, shape[k]! - block) : Math.max(1, shape[k]! - 1);
  else if (op === 3) shape.push(1);
  else if (shape.length > 1) shape.pop();
  else shape.push(2);
  s.tensors[i] = { ...t, shape };
  return `reshape ${t.name} [${t.shape.join(", ")}] to [${shape.join(", ")}]`;
};

const retypeTensor: Edit = (rng, s) => {
  if (s.tensors.length === 0) return null;
  const i = rng.below(s.tensors.length);
  const t = s.tensors[i]!;
  const type = rng.pick([...GGML_TYPES.keys()]);
  s.tensors[i] = { ...t, type };
  return `retype ${t.name} to ${GGML_TYPES.get(type)!.name}`;
};

const addExtraTensor: Edit = (rng, s) => {
  const layers = layerCount(s.seed);
  const name = rng.chance(0.5) ? `fuzz.extra_${s.extras}.weight` : `blk.${rng.below(layers)}.fuzz_extra_${s.extras}.weight`;
  s.tensors.splice(rng.below(s.tensors.length + 1), 0, { name, type: GgmlType.F32, shape: [32] });
  s.extras++;
  return `add tensor ${name}`;
};

const dropKey: Edit = (rng, s) => {
  if (s.metadata.length === 0) return null;
  const [e] = s.metadata.splice(rng.below(s.metadata.length), 1);
  s.touchedKeys.add(e!.key as string);
  return `drop key ${e!.key as string}`;
};

function changedValue(rng: Prng, value: GgufValue): GgufValue {
  switch (value.type) {
    case "u8": case "i8": case "u16": case "i16": case "u32": case "i32":
      return { ...value, value: rng.pick([0, 1, value.value + 1, Math.max(0, value.value - 1), value.value * 2, 65_535, 0xffff_ffff]) };
    case "f32": case "f64":
      return { ...value, value: rng.pick([0, -1, Number.NaN, Number.POSITIVE_INFINITY, value.value * 2, 1e-30]) };
    case "u64": case "i64":
      return { ...value, value: rng.pick([0n, 1n, value.value + 1n, 1n << 53n]) };
    case "bool":
      return { type: "bool", value: !value.value };
    case "string":
      return { type: "string", value: rng.pick(["", "llama", "qwen2", "qwen3", "gpt-j9", `${value.value}-x`]) };
    case "array":
      if (value.itemType === "string") return v.strings(value.items.toArray().slice(0, rng.below(value.length + 1)));
      return v.strings([]);
  }
}

/** A value read as a number: its value, its text parsed, its length for an array. */
function numberOf(value: GgufValue): number {
  switch (value.type) {
    case "array":
      return value.length;
    case "string":
    case "bool":
    case "u64":
    case "i64":
      return Number(value.value);
    default:
      return value.value;
  }
}

/** The same number (or text) under another value type; narrow integer types wrap. */
function retypedValue(rng: Prng, value: GgufValue): GgufValue {
  const n = numberOf(value);
  const int = Number.isFinite(n) ? Math.trunc(n) : 0;
  const options: GgufValue[] = [
    { type: "u8", value: int & 0xff },
    { type: "i16", value: (int << 16) >> 16 },
    { type: "u32", value: int >>> 0 },
    { type: "i32", value: int | 0 },
    { type: "u64", value: BigInt.asUintN(64, BigInt(int)) },
    { type: "i64", value: BigInt(int) },
    { type: "f32", value: Math.fround(n) },
    { type: "f64", value: n },
    { type: "string", value: String(n) },
    { type: "bool", value: n !== 0 },
  ];
  return rng.pick(options.filter((o) => o.type !== value.type));
}

const changeKey: Edit = (rng, s) => {
  if (s.metadata.length === 0) return null;
  const i = rng.below(s.metadata.length);
  const e = s.metadata[i]!;
  const value = rng.chance(0.6) ? changedValue(rng, e.value) : retypedValue(rng, e.value);
  s.metadata[i] = { key: e.key, value };
  s.touchedKeys.add(e.key as string);
  return `set ${e.key as string} to ${value.type} ${value.type === "array" ? `[${value.length}]` : String(value.value)}`;
};

const EDITS: readonly { readonly weight: number; readonly apply: Edit }[] = [
  { weight: 2, apply: dropTensor },
  { weight: 2, apply: renameTensor },
  { weight: 2, apply: reshapeTensor },
  { weight: 2, apply: retypeTensor },
  { weight: 3, apply: addExtraTensor },
  { weight: 2, apply: dropKey },
  { weight: 4, apply: changeKey },
];

// ─── one case ─────────────────────────────────────────────────────────────────

export interface ModelCase {
  readonly seed: string;
  readonly edits: readonly string[];
  readonly expectation: Expectation;
  readonly bytes: Uint8Array;
  readonly dataBytes: number;
}

/** Edits one model (one to three edits) and encodes it. */
export function editModel(rng: Prng, seeds: readonly ModelSeed[]): ModelCase {
  const seed = rng.pick(seeds);
  const s: EditState = { seed, metadata: [...seed.metadata], tensors: [...seed.tensors], touchedKeys: new Set(), extras: 0 };
  const edits: string[] = [];
  const wanted = rng.between(1, 3);
  const weights = EDITS.map((e) => e.weight);
  for (let tries = 0; edits.length < wanted && tries < 10; tries++) {
    const d = EDITS[rng.weighted(weights)]!.apply(rng, s);
    if (d) edits.push(d);
  }
  const header = encodeHeader({ metadata: s.metadata, tensors: s.tensors });
  return { seed: seed.name, edits, expectation: expectation(s), bytes: header.bytes, dataBytes: header.dataBytes };
}
