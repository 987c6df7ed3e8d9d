// The llama lineage in one llama.cpp table: Llama 1–3.x, Mistral, Mixtral
// (stacked experts), and Granite 3.x (the same tensors, plus its scales).

import { dims, t } from "../tensors.ts";
import type { ModelConfig } from "../config.ts";
import { all, experts, fullRope, gqa, model, needsFfn, RMS_NORM_KEY, sharedExpert, swiglu, type ArchFamily } from "./common.ts";
import { dim } from "../tensors.ts";

/** Layers of the llama table: dense SwiGLU, or Mixtral-style experts when expert_count > 0. */
function llamaTensors(c: ModelConfig) {
  const d = dims(c);
  // Llama 3.x carries its RoPE frequency factors as one tensor; long-RoPE models two.
  const factors = c.ropeScaling === "longrope" ? [t("rope_factors_long.weight", [d.halfRope], true), t("rope_factors_short.weight", [d.halfRope], true)] : [t("rope_freqs.weight", [d.halfRope], true)];
  return model(c, "optional", (p) => {
    const layer = [t(`${p}attn_norm.weight`, [d.embd]), ...gqa(c, p, "optional"), t(`${p}attn_output.bias`, [d.embd], true), t(`${p}ffn_norm.weight`, [d.embd])];
    if (c.experts === 0) {
      layer.push(...swiglu(c, p), t(`${p}ffn_gate.bias`, [d.ffn], true), t(`${p}ffn_down.bias`, [d.embd], true), t(`${p}ffn_up.bias`, [d.ffn], true));
    } else {
      // Mixtral: feed_forward_length is each expert's width; llama.cpp treats the gate as optional.
      layer.push(...experts(c, p, d.ffn, true));
      if (c.sharedExpertFfnSize) layer.push(...sharedExpert(c, p, dim(c.sharedExpertFfnSize, `expert_shared_feed_forward_length ${c.sharedExpertFfnSize}`)));
    }
    return layer;
  }, factors);
}

export const LLAMA: ArchFamily = {
  names: ["llama"],
  title: "Llama 1–3.x, Mistral, Mixtral (stacked experts), and kin",
  sizedAfter: "Llama-3.1-8B-Instruct Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "optional",
  // llama.cpp throws "invalid n_rot" for llama when the rotated size is not the head size.
  refine: all(fullRope("llama"), needsFfn("llama")),
  tensors: llamaTensors,
};

export const GRANITE: ArchFamily = {
  names: ["granite", "granitemoe"],
  title: "IBM Granite 3.x (dense; granitemoe with experts and an optional shared expert)",
  sizedAfter: "granite-3.1-8b-instruct Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "optional",
  readExtra: (r) => {
    // Granite divides its logits by logit_scale; the other scales default to off in current llama.cpp.
    r.f32("residual_scale");
    r.f32("embedding_scale");
    r.f32("attention.scale");
    r.bool("rope.scaling.finetuned");
    return { logitScale: r.f32("logit_scale", true), sharedExpertFfnSize: r.u32("expert_shared_feed_forward_length") ?? 0 };
  },
  refine: all(fullRope("granite"), needsFfn("granite"), (c, say) => {
    if (c.logitScale !== undefined && !(c.logitScale > 0)) say(`${c.architecture}.logit_scale is ${c.logitScale}; the logits are divided by it`);
    if (c.architecture === "granitemoe" && c.experts === 0) say(`granitemoe.expert_count is missing or 0: granitemoe layers are mixtures of experts`);
  }),
  tensors: llamaTensors,
};
