// Phi-3, Phi-3.5 and Phi-4(-mini): q, k and v fused into one attn_qkv (rows
// q | k | v), gate and up fused into one ffn_up of twice the width, and long-
// context RoPE factors as two global tensors. Current llama.cpp also reads
// separate q/k/v; a layer with neither loads there and crashes at the first
// token, so it is refused here.

import { dim, dims, t } from "../tensors.ts";
import { RMS_NORM_KEY, model, needsFfn, type ArchFamily } from "./common.ts";

export const PHI3: ArchFamily = {
  names: ["phi3"],
  title: "Phi-3, Phi-3.5, Phi-4, Phi-4-mini",
  sizedAfter: "Phi-4-mini-instruct Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "optional",
  readExtra: (r) => {
    // Read (and type-checked) by llama.cpp; the window is then ignored for Phi.
    r.u32("attention.sliding_window");
    r.u32("rope.scaling.original_context_length");
    r.f32("rope.scaling.attn_factor");
    return {};
  },
  refine: (c, say) => {
    needsFfn("phi3")(c, say);
    if (c.heads * c.headDim !== c.hiddenSize) say(`phi3: head_count ${c.heads} × head size ${c.headDim} is not phi3.embedding_length ${c.hiddenSize}, which Phi's attention requires`);
    if (c.ropeDim > c.headDim || c.ropeDim % 2 !== 0) say(`phi3.rope.dimension_count ${c.ropeDim} must be even and at most the head size ${c.headDim}`);
    if (c.valueDim !== c.headDim) say(`phi3.attention.value_length ${c.valueDim} differs from the key head size ${c.headDim}`);
  },
  tensors: (c, has) => {
    const d = dims(c);
    const qkv = dim(c.hiddenSize + 2 * c.kvHeads * c.valueDim, `embedding_length ${c.hiddenSize} + 2 × head_count_kv ${c.kvHeads} × head_dim ${c.valueDim} (q, k and v in one)`);
    const factors = [t("rope_factors_long.weight", [d.halfRope], true), t("rope_factors_short.weight", [d.halfRope], true)];
    return model(c, "optional", (p) => [
      t(`${p}attn_norm.weight`, [d.embd]),
      ...(has(`${p}attn_qkv.weight`) || !has(`${p}attn_q.weight`)
        ? [t(`${p}attn_qkv.weight`, [d.embd, qkv])]
        : [t(`${p}attn_q.weight`, [d.embd, d.embd]), t(`${p}attn_k.weight`, [d.embd, d.v]), t(`${p}attn_v.weight`, [d.embd, d.v])]),
      t(`${p}attn_output.weight`, [d.embd, d.embd]),
      t(`${p}ffn_norm.weight`, [d.embd]),
      t(`${p}ffn_down.weight`, [d.ffn, d.embd]),
      t(`${p}ffn_up.weight`, [d.embd, d.doubleFfn]),
    ], factors);
  },
};
