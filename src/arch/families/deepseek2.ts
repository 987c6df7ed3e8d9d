// DeepSeek-V2 / V2-Lite / V3 / R1: multi-head latent attention (MLA) and a
// mixture of routed and shared experts after `leading_dense_block_count` dense
// layers. llama.cpp chooses the attention tensors from the metadata alone:
//   q: attn_q_a + attn_q_a_norm + attn_q_b when q_lora_rank > 0, else attn_q;
//   kv: attn_k_b + attn_v_b (3-D, per head) when key_length_mla and
//       value_length_mla are set (current converters), else one attn_kv_b
//       (files converted before the split).
// The experts' selection bias (V3) is blk.N.exp_probs_b.bias.

import type { ModelConfig } from "../config.ts";
import { dim, dims, t, type ExpectedTensor } from "../tensors.ts";
import { experts, model, RMS_NORM_KEY, swiglu, type ArchFamily } from "./common.ts";

function attention(c: ModelConfig, p: string): ExpectedTensor[] {
  const d = dims(c);
  const mla = Boolean(c.mlaKeyLength && c.mlaValueLength);
  const kHead = mla ? c.mlaKeyLength! : c.headDim;
  const vHead = mla ? c.mlaValueLength! : c.valueDim;
  const nope = kHead - c.ropeDim;
  const qLora = c.qLoraRank ?? 0;
  const kvLora = dim(c.kvLoraRank!, `kv_lora_rank ${c.kvLoraRank}`);
  const q = dim(c.heads * kHead, `head_count ${c.heads} × ${mla ? "key_length_mla" : "key_length"} ${kHead}`);
  const out: ExpectedTensor[] = [t(`${p}attn_norm.weight`, [d.embd])];
  if (qLora > 0) out.push(t(`${p}attn_q_a_norm.weight`, [dim(qLora, `q_lora_rank ${qLora}`)]));
  out.push(t(`${p}attn_kv_a_norm.weight`, [kvLora]));
  if (qLora > 0) {
    const rank = dim(qLora, `q_lora_rank ${qLora}`);
    out.push(t(`${p}attn_q_a.weight`, [d.embd, rank]), t(`${p}attn_q_b.weight`, [rank, q]));
  } else {
    out.push(t(`${p}attn_q.weight`, [d.embd, q]));
  }
  out.push(t(`${p}attn_kv_a_mqa.weight`, [d.embd, dim(c.kvLoraRank! + c.ropeDim, `kv_lora_rank ${c.kvLoraRank} + rope.dimension_count ${c.ropeDim}`)]));
  const nopeDim = dim(nope, `${mla ? "key_length_mla" : "key_length"} ${kHead} − rope.dimension_count ${c.ropeDim}`);
  const vDim = dim(vHead, `${mla ? "value_length_mla" : "value_length"} ${vHead}`);
  if (mla) {
    out.push(t(`${p}attn_k_b.weight`, [nopeDim, kvLora, d.heads]), t(`${p}attn_v_b.weight`, [kvLora, vDim, d.heads]));
  } else {
    out.push(t(`${p}attn_kv_b.weight`, [kvLora, dim(c.heads * (nope + vHead), `head_count ${c.heads} × (${nope} + ${vHead})`)]));
  }
  out.push(t(`${p}attn_output.weight`, [dim(c.heads * vHead, `head_count ${c.heads} × ${vDim.why}`), d.embd]));
  return out;
}

export const DEEPSEEK2: ArchFamily = {
  names: ["deepseek2"],
  title: "DeepSeek-V2, V2-Lite, V2.5, V3, R1 (MLA, shared and routed experts)",
  sizedAfter: "DeepSeek-V2-Lite-Chat Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "optional",
  readExtra: (r) => {
    r.f32("expert_weights_scale");
    r.bool("expert_weights_norm");
    r.u32("expert_gating_func");
    r.f32("rope.scaling.yarn_log_multiplier");
    const sharedExperts = r.u32("expert_shared_count", true);
    const expertFfnSize = r.u32("expert_feed_forward_length", true);
    return {
      leadingDenseLayers: r.u32("leading_dense_block_count") ?? 0,
      qLoraRank: r.u32("attention.q_lora_rank") ?? 0,
      kvLoraRank: r.u32("attention.kv_lora_rank", true),
      mlaKeyLength: r.u32("attention.key_length_mla") ?? 0,
      mlaValueLength: r.u32("attention.value_length_mla") ?? 0,
      expertFfnSize,
      sharedExperts,
      sharedExpertFfnSize: expertFfnSize !== undefined && sharedExperts !== undefined ? expertFfnSize * sharedExperts : undefined,
    };
  },
  refine: (c, say) => {
    const kHead = c.mlaKeyLength && c.mlaValueLength ? c.mlaKeyLength : c.headDim;
    if (!c.kvLoraRank) say(`deepseek2.attention.kv_lora_rank is 0: MLA compresses k and v to that rank`);
    if (kHead <= c.ropeDim) say(`the key head size ${kHead} must be larger than deepseek2.rope.dimension_count ${c.ropeDim} (the part without RoPE would be empty)`);
    if ((c.leadingDenseLayers ?? 0) < c.layers && c.experts === 0) say(`deepseek2.expert_count is missing or 0, but layers from ${c.leadingDenseLayers ?? 0} on are mixtures of experts`);
    if ((c.leadingDenseLayers ?? 0) > 0 && c.ffnSize === 0) say(`deepseek2.feed_forward_length is missing or 0, but the first ${c.leadingDenseLayers} layers are dense`);
  },
  tensors: (c) => {
    const d = dims(c);
    const shared = dim(c.sharedExpertFfnSize ?? 0, `expert_feed_forward_length ${c.expertFfnSize} × expert_shared_count ${c.sharedExperts}`);
    const expertFfn = dim(c.expertFfnSize ?? 0, `expert_feed_forward_length ${c.expertFfnSize}`);
    return model(c, "optional", (p, l) => [
      ...attention(c, p),
      t(`${p}ffn_norm.weight`, [d.embd]),
      ...(l < (c.leadingDenseLayers ?? 0)
        ? swiglu(c, p)
        : [
            ...experts(c, p, expertFfn),
            t(`${p}exp_probs_b.bias`, [d.experts], true),
            t(`${p}ffn_gate_shexp.weight`, [d.embd, shared]),
            t(`${p}ffn_down_shexp.weight`, [shared, d.embd]),
            t(`${p}ffn_up_shexp.weight`, [d.embd, shared]),
          ]),
    ]);
  },
};
