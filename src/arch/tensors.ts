// The tensors a family expects, each dimension with the reason for its size,
// so a wrong shape can be explained ("expected [896, 128] (head_count_kv 2 ×
// head_dim 64)"). Shapes are in ggml "ne" order, as in the file.

import type { ModelConfig } from "./config.ts";

/** What a tensor is for; it decides the ggml types it may have. */
export type TensorRole = "embedding" | "matrix" | "experts" | "router" | "output" | "norm" | "bias" | "factors";

export interface ExpectedDim {
  readonly size: number;
  readonly why: string;
}

export interface ExpectedTensor {
  readonly name: string;
  readonly shape: readonly ExpectedDim[];
  readonly role: TensorRole;
  /** May be absent (llama.cpp's TENSOR_NOT_REQUIRED): a tied output.weight, biases, rope factors. */
  readonly optional?: boolean;
}

export const dim = (size: number, why: string): ExpectedDim => ({ size, why });

/** The role a tensor's name implies. */
export function roleOf(name: string): TensorRole {
  if (name.endsWith(".bias")) return "bias";
  if (name === "token_embd.weight") return "embedding";
  if (name === "output.weight" || name === "cls.output.weight") return "output";
  if (name.startsWith("rope_")) return "factors";
  if (/_norm(_\w+)?\.weight$/.test(name) || name.endsWith("attn_sinks.weight") || name.endsWith("ffn_gate_inp_shexp.weight")) return "norm";
  if (name.endsWith("ffn_gate_inp.weight")) return "router";
  if (name.endsWith("_exps.weight")) return "experts";
  return "matrix";
}

/** One expected tensor; its role from its name. */
export function t(name: string, shape: ExpectedDim[], optional = false): ExpectedTensor {
  return { name, shape, role: roleOf(name), optional };
}

/** The dimensions every family uses, with their reasons. */
export function dims(c: ModelConfig) {
  const heads = `head_count ${c.heads}`;
  const kvHeads = `head_count_kv ${c.kvHeads}`;
  return {
    embd: dim(c.hiddenSize, `embedding_length ${c.hiddenSize}`),
    vocab: dim(c.vocabSize, `vocab size ${c.vocabSize}`),
    ffn: dim(c.ffnSize, `feed_forward_length ${c.ffnSize}`),
    doubleFfn: dim(2 * c.ffnSize, `2 × feed_forward_length ${c.ffnSize} (gate and up in one)`),
    q: dim(c.heads * c.headDim, `${heads} × head_dim ${c.headDim}`),
    k: dim(c.kvHeads * c.headDim, `${kvHeads} × head_dim ${c.headDim}`),
    v: dim(c.kvHeads * c.valueDim, `${kvHeads} × value head_dim ${c.valueDim}`),
    head: dim(c.headDim, `head_dim ${c.headDim}`),
    halfRope: dim(c.ropeDim / 2, `rope.dimension_count ${c.ropeDim} / 2`),
    experts: dim(c.experts, `expert_count ${c.experts}`),
    heads: dim(c.heads, heads),
  };
}

/** The layer a tensor belongs to: blk.N → N; token_embd is the input, output* the output; the rest are shared by every layer. */
export function layerOf(name: string): number | "input" | "output" | "shared" {
  const m = /^blk\.(\d+)\./.exec(name);
  if (m) return Number(m[1]);
  if (name.startsWith("token_embd.")) return "input";
  if (name.startsWith("output") || name.startsWith("cls.")) return "output";
  return "shared";
}
