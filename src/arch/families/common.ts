// What a family is, and the pieces most families share: the input and output
// tensors, grouped-query attention, the SwiGLU FFN, and mixture-of-experts
// blocks. Names and shapes follow llama.cpp's load_tensors.

import type { KeyReader } from "../keys.ts";
import type { ModelConfig } from "../config.ts";
import { dim, dims, t, type ExpectedTensor } from "../tensors.ts";

export interface ArchFamily {
  /** general.architecture values this family reads (granite and granitemoe share one table). */
  readonly names: readonly string[];
  /** The models it covers. */
  readonly title: string;
  /** The published model its real-size fixture was sized after. */
  readonly sizedAfter: string;
  /** The epsilon key under `<arch>.` (every family here reads RMS norm's). */
  readonly normKey: string;
  /**
   * The LM head: "optional" (no output.weight means it is tied to token_embd),
   * "required" (llama.cpp has no tie fallback), "tied" (output.weight is never read: Gemma 2).
   */
  readonly output: "optional" | "required" | "tied";
  /** The family's own keys, read after the base ones (with their llama.cpp defaults). */
  readonly readExtra?: (r: KeyReader, base: Record<string, unknown>) => Record<string, unknown>;
  /** Rules between keys that llama.cpp enforces, or aborts on later: each breach is one sentence. */
  readonly refine?: (c: ModelConfig, say: (message: string) => void) => void;
  /**
   * Every tensor a model of this family has, layer by layer. `has` tells which
   * names the file holds, for the layouts llama.cpp chooses by presence (Phi-3's
   * fused or separate q/k/v).
   */
  readonly tensors: (c: ModelConfig, has: (name: string) => boolean) => ExpectedTensor[];
}

const RMS = "attention.layer_norm_rms_epsilon";
export const RMS_NORM_KEY = RMS;

/** token_embd and output_norm, then the layers, then output.weight as the family's head rule says. */
export function model(c: ModelConfig, output: ArchFamily["output"], layer: (p: string, l: number) => ExpectedTensor[], extra: ExpectedTensor[] = []): ExpectedTensor[] {
  const d = dims(c);
  const out: ExpectedTensor[] = [t("token_embd.weight", [d.embd, d.vocab]), t("output_norm.weight", [d.embd])];
  if (output !== "tied") out.push(t("output.weight", [d.embd, d.vocab], output === "optional"));
  out.push(...extra);
  for (let l = 0; l < c.layers; l++) out.push(...layer(`blk.${l}.`, l));
  return out;
}

/** q, k, v, output projections (with optional biases), as llama / Qwen3 / Gemma shape them. */
export function gqa(c: ModelConfig, p: string, biases: "none" | "optional" | "required" = "none"): ExpectedTensor[] {
  const d = dims(c);
  const out = [t(`${p}attn_q.weight`, [d.embd, d.q]), t(`${p}attn_k.weight`, [d.embd, d.k]), t(`${p}attn_v.weight`, [d.embd, d.v]), t(`${p}attn_output.weight`, [d.q, d.embd])];
  if (biases !== "none") {
    const optional = biases === "optional";
    out.push(t(`${p}attn_q.bias`, [d.q], optional), t(`${p}attn_k.bias`, [d.k], optional), t(`${p}attn_v.bias`, [d.v], optional));
  }
  return out;
}

/** gate, up, down of a SwiGLU FFN of width `ffn`. */
export function swiglu(c: ModelConfig, p: string, ffn = dims(c).ffn): ExpectedTensor[] {
  const d = dims(c);
  return [t(`${p}ffn_gate.weight`, [d.embd, ffn]), t(`${p}ffn_down.weight`, [ffn, d.embd]), t(`${p}ffn_up.weight`, [d.embd, ffn])];
}

/** The router and the stacked experts: [n_embd, n_ff_exp, n_expert] per projection. */
export function experts(c: ModelConfig, p: string, ffn: ReturnType<typeof dim>, gateOptional = false): ExpectedTensor[] {
  const d = dims(c);
  return [
    t(`${p}ffn_gate_inp.weight`, [d.embd, d.experts]),
    t(`${p}ffn_gate_exps.weight`, [d.embd, ffn, d.experts], gateOptional),
    t(`${p}ffn_down_exps.weight`, [ffn, d.embd, d.experts]),
    t(`${p}ffn_up_exps.weight`, [d.embd, ffn, d.experts]),
  ];
}

/** A shared expert of width `ffn`. */
export function sharedExpert(c: ModelConfig, p: string, ffn: ReturnType<typeof dim>): ExpectedTensor[] {
  const d = dims(c);
  return [t(`${p}ffn_gate_shexp.weight`, [d.embd, ffn]), t(`${p}ffn_down_shexp.weight`, [ffn, d.embd]), t(`${p}ffn_up_shexp.weight`, [d.embd, ffn])];
}

/** The per-expert width: expert_feed_forward_length, or (as llama.cpp falls back) feed_forward_length / experts used. */
export function expertWidth(c: ModelConfig): ReturnType<typeof dim> {
  if (c.expertFfnSize) return dim(c.expertFfnSize, `expert_feed_forward_length ${c.expertFfnSize}`);
  return dim(Math.floor(c.ffnSize / Math.max(1, c.expertsUsed)), `feed_forward_length ${c.ffnSize} / expert_used_count ${c.expertsUsed} (no expert_feed_forward_length)`);
}

/** Families whose graph asserts rope.dimension_count == the head size, and key == value head size. */
export function fullRope(arch: string) {
  return (c: ModelConfig, say: (m: string) => void) => {
    if (c.ropeDim !== c.headDim) say(`${arch}.rope.dimension_count is ${c.ropeDim}, but the head size is ${c.headDim}: ${arch} rotates whole heads (llama.cpp aborts on this when it builds the graph)`);
    if (c.valueDim !== c.headDim) say(`${arch}.attention.value_length ${c.valueDim} differs from the key head size ${c.headDim}, which ${arch} does not support`);
  };
}

/** A dense FFN needs its width (llama.cpp would expect [n_embd, 0] tensors and fail on each). */
export function needsFfn(arch: string) {
  return (c: ModelConfig, say: (m: string) => void) => {
    if (c.experts === 0 && c.ffnSize === 0) say(`${arch}.feed_forward_length is missing or 0: the FFN needs a width`);
  };
}

/** A MoE family needs experts (llama.cpp throws "n_expert must be > 0"). */
export function needsExperts(arch: string) {
  return (c: ModelConfig, say: (m: string) => void) => {
    if (c.experts === 0) say(`${arch}.expert_count is missing or 0: every ${arch} layer is a mixture of experts`);
  };
}

export const all = (...rules: ((c: ModelConfig, say: (m: string) => void) => void)[]) => (c: ModelConfig, say: (m: string) => void) => rules.forEach((r) => r(c, say));
