// Qwen: Qwen2/2.5 (q/k/v biases), Qwen3 (per-head q/k norms), and their
// mixture-of-experts versions (Qwen1.5/2-MoE with a gated shared expert,
// Qwen3-MoE). Qwen2 shapes q and the output by embedding_length itself.

import type { ModelConfig } from "../config.ts";
import { dim, dims, t } from "../tensors.ts";
import { all, experts, expertWidth, fullRope, gqa, model, needsExperts, needsFfn, RMS_NORM_KEY, sharedExpert, swiglu, type ArchFamily } from "./common.ts";

/** Qwen2's attention: q and the output are [n_embd, n_embd]; k and v are sized by the value head (n_embd_gqa). */
function qwen2Attention(c: ModelConfig, p: string) {
  const d = dims(c);
  return [
    t(`${p}attn_q.weight`, [d.embd, d.embd]),
    t(`${p}attn_k.weight`, [d.embd, d.k]),
    t(`${p}attn_v.weight`, [d.embd, d.v]),
    t(`${p}attn_output.weight`, [d.embd, d.embd]),
    // Required by llama.cpp until late 2025, optional since: every Qwen2 file has them.
    t(`${p}attn_q.bias`, [d.embd], true),
    t(`${p}attn_k.bias`, [d.k], true),
    t(`${p}attn_v.bias`, [d.v], true),
  ];
}

/** Qwen2 shapes q by n_embd: the heads must tile it exactly. */
const qTilesEmbedding = (arch: string) => (c: ModelConfig, say: (m: string) => void) => {
  if (c.heads * c.headDim !== c.hiddenSize) say(`${arch}: head_count ${c.heads} × head size ${c.headDim} is not ${arch}.embedding_length ${c.hiddenSize}, which ${arch}'s attention requires`);
};

/** Qwen3's per-head norms of q and k. */
const qkNorms = (c: ModelConfig, p: string) => [t(`${p}attn_k_norm.weight`, [dims(c).head]), t(`${p}attn_q_norm.weight`, [dims(c).head])];

export const QWEN2: ArchFamily = {
  names: ["qwen2"],
  title: "Qwen1.5 / Qwen2 / Qwen2.5 (dense)",
  sizedAfter: "Qwen2.5-7B-Instruct Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "optional",
  refine: all(fullRope("qwen2"), qTilesEmbedding("qwen2"), needsFfn("qwen2")),
  tensors: (c) => {
    const d = dims(c);
    return model(c, "optional", (p) => [t(`${p}attn_norm.weight`, [d.embd]), ...qwen2Attention(c, p), t(`${p}ffn_norm.weight`, [d.embd]), ...swiglu(c, p)], [t("output.bias", [d.vocab], true)]);
  },
};

export const QWEN3: ArchFamily = {
  names: ["qwen3"],
  title: "Qwen3 (dense)",
  sizedAfter: "Qwen3-8B Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "optional",
  refine: all(fullRope("qwen3"), needsFfn("qwen3")),
  tensors: (c) => {
    const d = dims(c);
    return model(c, "optional", (p) => [t(`${p}attn_norm.weight`, [d.embd]), ...gqa(c, p, "optional"), ...qkNorms(c, p), t(`${p}ffn_norm.weight`, [d.embd]), ...swiglu(c, p)]);
  },
};

export const QWEN2MOE: ArchFamily = {
  names: ["qwen2moe"],
  title: "Qwen1.5-MoE / Qwen2-MoE (experts and a gated shared expert)",
  sizedAfter: "Qwen1.5-MoE-A2.7B-Chat Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "required",
  readExtra: (r) => ({ expertFfnSize: r.u32("expert_feed_forward_length") ?? 0, sharedExpertFfnSize: r.u32("expert_shared_feed_forward_length") ?? 0 }),
  refine: all(fullRope("qwen2moe"), qTilesEmbedding("qwen2moe"), needsExperts("qwen2moe")),
  tensors: (c) => {
    const d = dims(c);
    const shared = c.sharedExpertFfnSize ? dim(c.sharedExpertFfnSize, `expert_shared_feed_forward_length ${c.sharedExpertFfnSize}`) : dim(c.ffnSize, `feed_forward_length ${c.ffnSize} (no expert_shared_feed_forward_length)`);
    return model(c, "required", (p) => [
      t(`${p}attn_norm.weight`, [d.embd]),
      ...qwen2Attention(c, p),
      t(`${p}ffn_norm.weight`, [d.embd]),
      ...experts(c, p, expertWidth(c)),
      t(`${p}ffn_gate_inp_shexp.weight`, [d.embd]),
      ...sharedExpert(c, p, shared),
    ]);
  },
};

export const QWEN3MOE: ArchFamily = {
  names: ["qwen3moe"],
  title: "Qwen3-MoE (30B-A3B, 235B-A22B)",
  sizedAfter: "Qwen3-30B-A3B Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "optional",
  readExtra: (r) => ({ expertFfnSize: r.u32("expert_feed_forward_length") ?? 0 }),
  refine: all(fullRope("qwen3moe"), needsExperts("qwen3moe")),
  tensors: (c) => {
    const d = dims(c);
    return model(c, "optional", (p) => [t(`${p}attn_norm.weight`, [d.embd]), ...gqa(c, p, "optional"), ...qkNorms(c, p), t(`${p}ffn_norm.weight`, [d.embd]), ...experts(c, p, expertWidth(c))]);
  },
};
