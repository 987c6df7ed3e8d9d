// gpt-oss (20b, 120b): every layer a mixture of experts with biases on
// everything, a learned attention sink per head, and sliding-window attention
// on every other layer. Heads are sized by rope.dimension_count (whose default,
// the key length, must then be given: 2880 / 64 heads is not 64).

import type { ModelConfig } from "../config.ts";
import { dim, dims, t } from "../tensors.ts";
import { experts, expertWidth, model, RMS_NORM_KEY, type ArchFamily } from "./common.ts";

export const GPT_OSS: ArchFamily = {
  names: ["gpt-oss"],
  title: "gpt-oss (OpenAI's open-weight MoE: 20b, 120b)",
  sizedAfter: "gpt-oss-20b Q4_K_M (MXFP4 experts)",
  normKey: RMS_NORM_KEY,
  output: "required",
  readExtra: (r) => {
    r.u32("attention.sliding_window_pattern");
    return { expertFfnSize: r.u32("expert_feed_forward_length", true), slidingWindow: r.u32("attention.sliding_window", true) };
  },
  refine: (c: ModelConfig, say) => {
    if (c.experts === 0) say(`gpt-oss.expert_count is missing or 0: every gpt-oss layer is a mixture of experts`);
    if (c.slidingWindow === 0) say(`gpt-oss.attention.sliding_window is 0: a sliding window needs at least one token`);
  },
  tensors: (c) => {
    const d = dims(c);
    const head = `rope.dimension_count ${c.ropeDim}`;
    const q = dim(c.heads * c.ropeDim, `head_count ${c.heads} × ${head}`);
    const kv = dim(c.kvHeads * c.ropeDim, `head_count_kv ${c.kvHeads} × ${head}`);
    const ffn = expertWidth(c);
    return model(c, "required", (p) => [
      t(`${p}attn_norm.weight`, [d.embd]),
      t(`${p}post_attention_norm.weight`, [d.embd]),
      t(`${p}attn_q.weight`, [d.embd, q]),
      t(`${p}attn_k.weight`, [d.embd, kv]),
      t(`${p}attn_v.weight`, [d.embd, kv]),
      t(`${p}attn_output.weight`, [q, d.embd]),
      t(`${p}attn_sinks.weight`, [d.heads]),
      ...experts(c, p, ffn),
      t(`${p}attn_q.bias`, [q]),
      t(`${p}attn_k.bias`, [kv]),
      t(`${p}attn_v.bias`, [kv]),
      t(`${p}attn_output.bias`, [d.embd]),
      t(`${p}ffn_gate_inp.bias`, [d.experts]),
      t(`${p}ffn_gate_exps.bias`, [ffn, d.experts]),
      t(`${p}ffn_down_exps.bias`, [d.embd, d.experts]),
      t(`${p}ffn_up_exps.bias`, [ffn, d.experts]),
    ]);
  },
};
