// OLMo 2 (and OLMo 3, which adds sliding windows): no norms before attention
// or the FFN, only after; q and k are normed over their whole width, not per
// head. llama.cpp requires output.weight (there is no tie fallback).

import { dim, dims, t } from "../tensors.ts";
import { fullRope, model, needsFfn, RMS_NORM_KEY, swiglu, type ArchFamily } from "./common.ts";

export const OLMO2: ArchFamily = {
  names: ["olmo2"],
  title: "OLMo 2, OLMo 3",
  sizedAfter: "OLMo-2-1124-7B-Instruct Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "required",
  readExtra: (r) => ({ slidingWindow: r.u32("attention.sliding_window") }),
  refine: (c, say) => {
    fullRope("olmo2")(c, say);
    needsFfn("olmo2")(c, say);
    if (c.heads * c.headDim !== c.hiddenSize) say(`olmo2: head_count ${c.heads} × head size ${c.headDim} is not olmo2.embedding_length ${c.hiddenSize}, which OLMo's attention requires`);
  },
  tensors: (c) => {
    const d = dims(c);
    return model(c, "required", (p) => [
      t(`${p}attn_q.weight`, [d.embd, d.embd]),
      t(`${p}attn_k.weight`, [d.embd, d.v]),
      t(`${p}attn_v.weight`, [d.embd, d.v]),
      t(`${p}attn_output.weight`, [d.embd, d.embd]),
      t(`${p}attn_q_norm.weight`, [d.embd]),
      t(`${p}attn_k_norm.weight`, [dim(c.kvHeads * c.headDim, `head_count_kv ${c.kvHeads} × head_dim ${c.headDim} (k's whole width)`)]),
      t(`${p}post_attention_norm.weight`, [d.embd]),
      ...swiglu(c, p),
      t(`${p}post_ffw_norm.weight`, [d.embd]),
    ]);
  },
};
