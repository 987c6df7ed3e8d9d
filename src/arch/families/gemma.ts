// Gemma 2 and 3: norms after attention and after the FFN as well as before,
// sliding-window layers (Gemma 2: every other one; Gemma 3: five of six).
// Gemma 2's head is always its embedding: llama.cpp never reads output.weight,
// so a file that has one is refused. Gemma 3 has per-head q/k norms.

import { dims, t } from "../tensors.ts";
import { all, fullRope, gqa, model, needsFfn, RMS_NORM_KEY, swiglu, type ArchFamily } from "./common.ts";
import type { ModelConfig } from "../config.ts";

const window = (arch: string) => (c: ModelConfig, say: (m: string) => void) => {
  if (c.slidingWindow === 0) say(`${arch}.attention.sliding_window is 0: a sliding window needs at least one token`);
};

function gemmaLayer(c: ModelConfig, p: string, qkNorms: boolean) {
  const d = dims(c);
  return [
    t(`${p}attn_norm.weight`, [d.embd]),
    ...gqa(c, p),
    t(`${p}post_attention_norm.weight`, [d.embd]),
    ...(qkNorms ? [t(`${p}attn_k_norm.weight`, [d.head]), t(`${p}attn_q_norm.weight`, [d.head])] : []),
    t(`${p}ffn_norm.weight`, [d.embd]),
    ...swiglu(c, p),
    t(`${p}post_ffw_norm.weight`, [d.embd]),
  ];
}

export const GEMMA2: ArchFamily = {
  names: ["gemma2"],
  title: "Gemma 2 (2B, 9B, 27B)",
  sizedAfter: "gemma-2-9b-it Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "tied",
  readExtra: (r) => {
    r.f32("attn_logit_softcapping");
    r.f32("final_logit_softcapping");
    return { slidingWindow: r.u32("attention.sliding_window") ?? 4096 };
  },
  refine: all(fullRope("gemma2"), needsFfn("gemma2"), window("gemma2")),
  tensors: (c) => model(c, "tied", (p) => gemmaLayer(c, p, false)),
};

export const GEMMA3: ArchFamily = {
  names: ["gemma3"],
  title: "Gemma 3 text models (270M – 27B)",
  sizedAfter: "gemma-3-12b-it Q4_K_M",
  normKey: RMS_NORM_KEY,
  output: "optional",
  readExtra: (r) => {
    r.f32("final_logit_softcapping");
    return { slidingWindow: r.u32("attention.sliding_window") };
  },
  refine: all(fullRope("gemma3"), needsFfn("gemma3"), window("gemma3")),
  tensors: (c) => model(c, "optional", (p) => gemmaLayer(c, p, true)),
};
