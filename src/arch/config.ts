// A model's hyper-parameters, read from GGUF metadata (`<arch>.block_count`,
// …) and validated with zod. Problems are collected, not thrown: `inspect`
// shows them all at once, the loader refuses a model that has any.

import { z } from "zod";
import { shortestF32, type GgufFile } from "../gguf/index.ts";
import type { ModelProblem } from "./problems.ts";

export const ModelConfig = z
  .object({
    architecture: z.string().min(1),
    vocabSize: z.number().int().positive(),
    hiddenSize: z.number().int().positive(),
    layers: z.number().int().positive(),
    heads: z.number().int().positive(),
    kvHeads: z.number().int().positive(),
    headDim: z.number().int().positive(),
    ffnSize: z.number().int().positive(),
    contextLength: z.number().int().positive(),
    ropeBase: z.number().positive(),
    rmsEpsilon: z.number().positive(),
  })
  .superRefine((c, ctx) => {
    if (c.heads % c.kvHeads !== 0) {
      ctx.addIssue({ code: "custom", path: ["kvHeads"], message: `attention.head_count ${c.heads} is not a multiple of attention.head_count_kv ${c.kvHeads}` });
    }
  });
export type ModelConfig = z.infer<typeof ModelConfig>;

/** Read an integer-valued key of any integer width; undefined when absent. */
function integer(gguf: GgufFile, key: string, problems: ModelProblem[]): number | undefined {
  const v = gguf.get(key);
  if (!v) return undefined;
  if (v.type === "u64" || v.type === "i64") {
    if (v.value > 0n && v.value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v.value);
  } else if (v.type === "u8" || v.type === "i8" || v.type === "u16" || v.type === "i16" || v.type === "u32" || v.type === "i32") {
    if (v.value > 0) return v.value;
  } else {
    problems.push({ code: "BAD_KEY", key, message: `${key} is a ${v.type}; expected an integer` });
    return undefined;
  }
  problems.push({ code: "BAD_KEY", key, message: `${key} is ${v.value}; expected a positive integer` });
  return undefined;
}

function real(gguf: GgufFile, key: string, problems: ModelProblem[]): number | undefined {
  const v = gguf.get(key);
  if (!v) return undefined;
  if (v.type === "f32" || v.type === "f64") {
    // f32 keys as written (1e-6), not as widened (9.999999974752427e-7).
    if (v.value > 0 && Number.isFinite(v.value)) return v.type === "f32" ? shortestF32(v.value) : v.value;
    problems.push({ code: "BAD_KEY", key, message: `${key} is ${v.value}; expected a positive number` });
    return undefined;
  }
  problems.push({ code: "BAD_KEY", key, message: `${key} is a ${v.type}; expected a float` });
  return undefined;
}

function required<T>(value: T | undefined, key: string, problems: ModelProblem[]): T | undefined {
  if (value === undefined && !problems.some((p) => p.key === key)) {
    problems.push({ code: "MISSING_KEY", key, message: `the metadata has no ${key}, which every ${key.split(".")[0]} model needs` });
  }
  return value;
}

/** The vocabulary size: `<arch>.vocab_size`, else the tokenizer's token count, else token_embd's rows. */
function vocabSize(gguf: GgufFile, arch: string, problems: ModelProblem[]): number | undefined {
  const explicit = integer(gguf, `${arch}.vocab_size`, problems);
  if (explicit !== undefined) return explicit;
  const tokens = gguf.get("tokenizer.ggml.tokens");
  if (tokens?.type === "array") return tokens.length;
  const embd = gguf.tensor("token_embd.weight");
  if (embd && embd.shape.length === 2) return embd.shape[1];
  problems.push({ code: "MISSING_KEY", key: "tokenizer.ggml.tokens", message: `the vocabulary size is unknown: no ${arch}.vocab_size, no tokenizer.ggml.tokens and no token_embd.weight` });
  return undefined;
}

/** Extract and validate the config of a model of architecture `arch`; null when a problem prevents it. */
export function readConfig(gguf: GgufFile, arch: string, problems: ModelProblem[]): ModelConfig | null {
  const before = problems.length;
  const k = (name: string) => `${arch}.${name}`;
  const hiddenSize = required(integer(gguf, k("embedding_length"), problems), k("embedding_length"), problems);
  const layers = required(integer(gguf, k("block_count"), problems), k("block_count"), problems);
  const heads = required(integer(gguf, k("attention.head_count"), problems), k("attention.head_count"), problems);
  const ffnSize = required(integer(gguf, k("feed_forward_length"), problems), k("feed_forward_length"), problems);
  const contextLength = required(integer(gguf, k("context_length"), problems), k("context_length"), problems);
  const rmsEpsilon = required(real(gguf, k("attention.layer_norm_rms_epsilon"), problems), k("attention.layer_norm_rms_epsilon"), problems);
  // As in llama.cpp: no head_count_kv means one KV head per head, no freq_base means 10000.
  const kvHeads = integer(gguf, k("attention.head_count_kv"), problems) ?? heads;
  const ropeBase = real(gguf, k("rope.freq_base"), problems) ?? 10_000;
  const vocab = vocabSize(gguf, arch, problems);
  const keyLength = integer(gguf, k("attention.key_length"), problems);

  let headDim = keyLength;
  if (headDim === undefined && hiddenSize !== undefined && heads !== undefined) {
    if (hiddenSize % heads !== 0) {
      problems.push({ code: "BAD_CONFIG", key: k("attention.head_count"), message: `${k("embedding_length")} ${hiddenSize} is not divisible by ${k("attention.head_count")} ${heads}, so there is no head size` });
    } else headDim = hiddenSize / heads;
  }
  if (problems.length > before) return null;

  const parsed = ModelConfig.safeParse({ architecture: arch, vocabSize: vocab, hiddenSize, layers, heads, kvHeads, headDim, ffnSize, contextLength, ropeBase, rmsEpsilon });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push({ code: "BAD_CONFIG", message: issue.message });
    return null;
  }
  return parsed.data;
}
