// A model's hyper-parameters: the keys every family reads the same way
// (llama.cpp's load_hparams prologue), then the family's own, validated with
// zod. Each message names the key behind the number, so a refusal reads
// "qwen3moe.expert_used_count is 0; …", never a bare field name.

import { z } from "zod";
import type { GgufFile } from "../gguf/index.ts";
import { KeyReader } from "./keys.ts";
import type { ModelProblem } from "./problems.ts";

/** llama.cpp's LLAMA_MAX_LAYERS and LLAMA_MAX_EXPERTS. */
export const MAX_LAYERS = 512;
export const MAX_EXPERTS = 512;

/** The RoPE scaling types llama.cpp knows; any other string aborts it. */
export const ROPE_SCALING = ["none", "linear", "yarn", "longrope"] as const;

/** What every family has. Sizes are layer 0's, as llama.cpp uses them for every layer. */
export interface BaseConfig {
  readonly architecture: string;
  /** The tokenizer's token count (what token_embd must have), else `<arch>.vocab_size`, else token_embd's rows. */
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  /** attention.key_length (default hidden / heads). */
  readonly headDim: number;
  /** attention.value_length (default hidden / heads). */
  readonly valueDim: number;
  /** rope.dimension_count (default the head size). */
  readonly ropeDim: number;
  /** feed_forward_length (0 when absent). */
  readonly ffnSize: number;
  readonly contextLength: number;
  readonly ropeBase: number;
  readonly ropeScaling: (typeof ROPE_SCALING)[number];
  readonly normEpsilon: number;
  readonly experts: number;
  readonly expertsUsed: number;
}

/** Family keys beyond the base, each optional here; a family's schema says which it requires. */
export interface FamilyConfig {
  /** Per expert (expert_feed_forward_length); MoE families. */
  readonly expertFfnSize?: number;
  /** The shared expert's width (expert_shared_feed_forward_length), or expert count × width (DeepSeek). */
  readonly sharedExpertFfnSize?: number;
  readonly sharedExperts?: number;
  /** DeepSeek: dense layers before the MoE ones (leading_dense_block_count). */
  readonly leadingDenseLayers?: number;
  /** DeepSeek MLA: the LoRA ranks of q (0: a plain attn_q) and of kv. */
  readonly qLoraRank?: number;
  readonly kvLoraRank?: number;
  /** DeepSeek MLA: key_length_mla / value_length_mla (0: the legacy attn_kv_b layout). */
  readonly mlaKeyLength?: number;
  readonly mlaValueLength?: number;
  /** attention.sliding_window (Gemma, gpt-oss, OLMo 3). */
  readonly slidingWindow?: number;
  /** Granite's logit_scale. */
  readonly logitScale?: number;
}

export type ModelConfig = BaseConfig & FamilyConfig;

/** The base keys, as llama.cpp reads them, with their defaults. */
export function readBase(gguf: Pick<GgufFile, "get" | "tensor">, r: KeyReader, normKey: string): Record<string, unknown> {
  const hiddenSize = r.u32("embedding_length", true);
  const layers = r.u32("block_count", true);
  const heads = r.perLayer("attention.head_count", layers) ?? 0;
  const kvHeads = r.perLayer("attention.head_count_kv", layers) ?? heads;
  const keyLength = r.u32("attention.key_length");
  const valueLength = r.u32("attention.value_length");
  // llama.cpp divides without checking; a head size that does not divide is refused below.
  const split = hiddenSize !== undefined && heads > 0 ? hiddenSize / heads : undefined;
  const headDim = keyLength ?? split;
  const valueDim = valueLength ?? split;
  const factor = r.f32("rope.scaling.factor");
  return {
    architecture: r.arch,
    vocabSize: vocabSize(gguf, r),
    hiddenSize,
    layers,
    heads,
    kvHeads,
    headDim,
    valueDim,
    ropeDim: r.u32("rope.dimension_count") ?? headDim,
    ffnSize: r.perLayer("feed_forward_length", layers) ?? 0,
    contextLength: r.u32("context_length", true),
    ropeBase: r.f32("rope.freq_base") ?? 10_000,
    ropeScaling: r.string("rope.scaling.type") ?? "linear",
    ropeScaleFactor: factor ?? (factor === undefined ? r.f32("rope.scale_linear") : undefined),
    normEpsilon: r.f32(normKey, true),
    experts: r.u32("expert_count") ?? 0,
    expertsUsed: r.u32("expert_used_count") ?? 0,
    expertGroups: r.u32("expert_group_count") ?? 0,
    expertGroupsUsed: r.u32("expert_group_used_count") ?? 0,
  };
}

/** The tokenizer's token count, as llama.cpp sizes token_embd; else `<arch>.vocab_size`; else token_embd's rows. */
function vocabSize(gguf: Pick<GgufFile, "get" | "tensor">, r: KeyReader): number | undefined {
  const tokens = gguf.get("tokenizer.ggml.tokens");
  if (tokens?.type === "array") return tokens.length;
  const explicit = r.u32("vocab_size");
  if (explicit !== undefined) return explicit;
  const embd = gguf.tensor("token_embd.weight");
  if (embd && embd.shape.length >= 2) return embd.shape[1];
  r.problems.push({ code: "MISSING_KEY", key: "tokenizer.ggml.tokens", message: `the vocabulary size is unknown: no tokenizer.ggml.tokens, no ${r.key("vocab_size")} and no token_embd.weight` });
  return undefined;
}

// ─── validation ───────────────────────────────────────────────────────────────

const count = (key: string, min = 1) => z.number({ error: `${key} is missing or unreadable` }).int().min(min, min === 1 ? `${key} is 0; it must be at least 1` : `${key} is below ${min}`);

/** The base schema for `arch`, every message naming its key. */
export function baseSchema(arch: string, normKey: string) {
  const k = (name: string) => `${arch}.${name}`;
  return z
    .object({
      architecture: z.string(),
      vocabSize: count("the vocabulary size (tokenizer.ggml.tokens)"),
      hiddenSize: count(k("embedding_length")),
      layers: count(k("block_count")).max(MAX_LAYERS, `${k("block_count")} is above ${MAX_LAYERS}, the most llama.cpp supports`),
      heads: count(k("attention.head_count")),
      kvHeads: count(k("attention.head_count_kv")),
      headDim: z.number().int(`the head size is not a whole number: ${k("embedding_length")} does not divide by ${k("attention.head_count")} (and there is no ${k("attention.key_length")})`).min(1, `the head size is 0`),
      valueDim: z.number().int(`the value head size is not a whole number: ${k("embedding_length")} does not divide by ${k("attention.head_count")} (and there is no ${k("attention.value_length")})`).min(1, `the value head size is 0`),
      ropeDim: z.number().int().min(0),
      ffnSize: z.number().int().min(0),
      contextLength: count(k("context_length")),
      ropeBase: z.number().positive(`${k("rope.freq_base")} must be positive`),
      ropeScaling: z.enum(ROPE_SCALING, { error: `${k("rope.scaling.type")} must be one of ${ROPE_SCALING.join(", ")} (llama.cpp aborts on anything else)` }),
      ropeScaleFactor: z.number().min(0).optional(),
      normEpsilon: z.number({ error: `${k(normKey)} is missing or unreadable` }).positive(`${k(normKey)} must be positive`),
      experts: z.number().int().min(0).max(MAX_EXPERTS, `${k("expert_count")} is above ${MAX_EXPERTS}, the most llama.cpp supports`),
      expertsUsed: z.number().int().min(0),
      expertGroups: z.number().int().min(0),
      expertGroupsUsed: z.number().int().min(0),
    })
    .loose() // the family's own keys pass through to its refine()
    .superRefine((c, ctx) => {
      const say = (message: string) => ctx.addIssue({ code: "custom", message });
      // llama.cpp loads these and aborts later, at context creation or in the graph: refuse them now.
      if (c.heads % c.kvHeads !== 0) say(`${k("attention.head_count")} ${c.heads} is not a multiple of ${k("attention.head_count_kv")} ${c.kvHeads}: the heads cannot share key/value heads evenly`);
      // The expert rules llama.cpp asserts (and dies on) when it reads the keys.
      if (c.expertsUsed > c.experts) say(`${k("expert_used_count")} ${c.expertsUsed} is more than ${k("expert_count")} ${c.experts}`);
      if (c.experts > 0 && c.expertsUsed === 0) say(`${k("expert_count")} is ${c.experts} but ${k("expert_used_count")} is 0: a MoE model must route each token to at least one expert`);
      if (c.experts > 0 && c.expertGroups >= c.experts) say(`${k("expert_group_count")} ${c.expertGroups} must be below ${k("expert_count")} ${c.experts}`);
      if (c.experts === 0 && c.expertGroups > 0) say(`${k("expert_group_count")} is ${c.expertGroups} in a model without experts`);
      if (c.expertGroups > 1 && (c.experts % c.expertGroups !== 0 || c.expertGroupsUsed === 0 || c.expertGroupsUsed >= c.expertGroups)) {
        say(`${k("expert_group_count")} ${c.expertGroups} and ${k("expert_group_used_count")} ${c.expertGroupsUsed} do not fit ${c.experts} experts`);
      }
    });
}

/**
 * Read and validate a config: the base keys, the family's `extra` keys, and the
 * family's own rules; null when a problem prevents it (all are in `problems`).
 */
export function readConfig<T extends ModelConfig>(
  gguf: Pick<GgufFile, "get" | "tensor">,
  arch: string,
  problems: ModelProblem[],
  family: { readonly normKey: string; readonly readExtra?: (r: KeyReader, base: Record<string, unknown>) => Record<string, unknown>; readonly refine?: (c: ModelConfig, say: (message: string) => void) => void },
): T | null {
  const before = problems.length;
  const r = new KeyReader(gguf, arch, problems);
  const base = readBase(gguf, r, family.normKey);
  const extra = family.readExtra?.(r, base) ?? {};
  if (problems.length > before) return null;
  const parsed = baseSchema(arch, family.normKey).safeParse({ ...base, ...extra });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push({ code: "BAD_CONFIG", message: issue.message });
    return null;
  }
  const config = parsed.data as unknown as T;
  family.refine?.(config, (message) => problems.push({ code: "BAD_CONFIG", message }));
  return problems.length > before ? null : config;
}
