// The tensor table each supported architecture must have, derived from its
// config. A dimension carries the reason for its size, so a wrong shape can be
// explained ("expected [896, 128] (head_count_kv 2 × head_dim 64)").

import type { ModelConfig } from "./config.ts";

/** What a tensor is for; it decides the ggml types it may have. */
export type TensorRole = "embedding" | "matrix" | "output" | "norm" | "bias";

export interface ExpectedDim {
  readonly size: number;
  readonly why: string;
}

export interface ExpectedTensor {
  readonly name: string;
  readonly shape: readonly ExpectedDim[];
  readonly role: TensorRole;
  /** May be absent: `output.weight` (the LM head tied to token_embd), `rope_freqs.weight`. */
  readonly optional?: boolean;
}

export interface ArchFamily {
  readonly name: string;
  readonly description: string;
  /** Every tensor a model of this family has, in file order. */
  tensors(c: ModelConfig): ExpectedTensor[];
}

// ─── dimensions with reasons ──────────────────────────────────────────────────

function dims(c: ModelConfig) {
  return {
    hidden: { size: c.hiddenSize, why: `embedding_length ${c.hiddenSize}` },
    vocab: { size: c.vocabSize, why: `vocab size ${c.vocabSize}` },
    ffn: { size: c.ffnSize, why: `feed_forward_length ${c.ffnSize}` },
    q: { size: c.heads * c.headDim, why: `head_count ${c.heads} × head_dim ${c.headDim}` },
    kv: { size: c.kvHeads * c.headDim, why: `head_count_kv ${c.kvHeads} × head_dim ${c.headDim}` },
    head: { size: c.headDim, why: `head_dim ${c.headDim}` },
    halfHead: { size: c.headDim / 2, why: `head_dim ${c.headDim} / 2` },
  };
}

const t = (name: string, role: TensorRole, shape: ExpectedDim[], optional = false): ExpectedTensor => ({ name, role, shape, optional });

interface LayerOptions {
  /** q, k and v carry biases (Qwen2). */
  readonly qkvBias?: boolean;
  /** q and k are RMS-normed per head (Qwen3). */
  readonly qkNorm?: boolean;
}

/** The decoder-only transformer shared by the llama lineage: RMSNorm, GQA attention, SwiGLU FFN. */
function decoderTensors(c: ModelConfig, o: LayerOptions, extra: ExpectedTensor[] = []): ExpectedTensor[] {
  const d = dims(c);
  const out: ExpectedTensor[] = [t("token_embd.weight", "embedding", [d.hidden, d.vocab]), ...extra];
  for (let l = 0; l < c.layers; l++) {
    const p = `blk.${l}.`;
    out.push(t(`${p}attn_norm.weight`, "norm", [d.hidden]));
    out.push(t(`${p}attn_q.weight`, "matrix", [d.hidden, d.q]));
    if (o.qkvBias) out.push(t(`${p}attn_q.bias`, "bias", [d.q]));
    out.push(t(`${p}attn_k.weight`, "matrix", [d.hidden, d.kv]));
    if (o.qkvBias) out.push(t(`${p}attn_k.bias`, "bias", [d.kv]));
    out.push(t(`${p}attn_v.weight`, "matrix", [d.hidden, d.kv]));
    if (o.qkvBias) out.push(t(`${p}attn_v.bias`, "bias", [d.kv]));
    if (o.qkNorm) {
      out.push(t(`${p}attn_q_norm.weight`, "norm", [d.head]));
      out.push(t(`${p}attn_k_norm.weight`, "norm", [d.head]));
    }
    out.push(t(`${p}attn_output.weight`, "matrix", [d.q, d.hidden]));
    out.push(t(`${p}ffn_norm.weight`, "norm", [d.hidden]));
    out.push(t(`${p}ffn_gate.weight`, "matrix", [d.hidden, d.ffn]));
    out.push(t(`${p}ffn_up.weight`, "matrix", [d.hidden, d.ffn]));
    out.push(t(`${p}ffn_down.weight`, "matrix", [d.ffn, d.hidden]));
  }
  out.push(t("output_norm.weight", "norm", [d.hidden]));
  out.push(t("output.weight", "output", [d.hidden, d.vocab], true));
  return out;
}

// ─── the registry ─────────────────────────────────────────────────────────────

export const FAMILIES: ReadonlyMap<string, ArchFamily> = new Map(
  [
    {
      name: "qwen2",
      description: "Qwen2 / Qwen2.5: llama-style decoder with q/k/v biases",
      tensors: (c: ModelConfig) => decoderTensors(c, { qkvBias: true }),
    },
    {
      name: "llama",
      description: "Llama 2/3, Mistral and kin: RMSNorm, GQA, SwiGLU, no biases",
      tensors: (c: ModelConfig) => decoderTensors(c, {}, [t("rope_freqs.weight", "norm", [dims(c).halfHead], true)]),
    },
    {
      name: "qwen3",
      description: "Qwen3 (dense): per-head q/k RMSNorm, no biases",
      tensors: (c: ModelConfig) => decoderTensors(c, { qkNorm: true }),
    },
  ].map((f) => [f.name, f]),
);
