// The registry against real models, independently of it: each row below is
// written by hand from the model's published config (Hugging Face config.json)
// and the GGUF converter's naming, with every shape a literal number. A file is
// built from the row alone — its metadata keys, a tokenizer of the vocabulary's
// size, and exactly these tensors — and the registry must accept it, expect
// exactly these tensors, and refuse it when any one dimension is off. A wrong
// registry rule cannot hide behind a fixture generated from that same rule.

import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkModel } from "../src/arch/index.ts";
import { StringArray, GgmlType, readGguf } from "../src/gguf/index.ts";
import { encodeHeader, writeGgufFile, type WriteEntry } from "../src/gguf/writer.ts";
import { tempDirs } from "./support/temp.ts";

const tempDir = tempDirs(); // removed after this file's tests

type Shape = readonly number[];
/** Tensors by name, with their shapes in GGUF (ggml) order: the contiguous dimension first. */
type Tensors = Readonly<Record<string, Shape>>;
/** A metadata value with the GGUF type llama.cpp demands of it: counts u32, floats f32. */
type KeyValue = ["u32", number] | ["f32", number] | ["bool", boolean] | ["str", string];

interface RealModel {
  readonly name: string;
  readonly arch: string;
  /** Keys under `<arch>.`, with their GGUF types as the converter writes them. */
  readonly keys: Readonly<Record<string, KeyValue>>;
  readonly vocab: number;
  /** Tensors outside the layers. */
  readonly global: Tensors;
  /** The leading layers when they differ from the rest (DeepSeek's dense first layer). */
  readonly firstLayers?: { readonly count: number; readonly layer: Tensors };
  /** The tensors of every layer (past `firstLayers`), by their name after `blk.N.`. */
  readonly layer: Tensors;
  readonly layers: number;
  /** The GGUF tensor count, from the model's published file or worked out by hand. */
  readonly tensors: number;
}

// DeepSeek-V2-Lite-Chat exists in two GGUF forms (two rows below) that differ only in
// how attention is stored; the keys, globals and FFNs here are shared by both.
const DEEPSEEK_V2_LITE_KEYS: Readonly<Record<string, KeyValue>> = {
  block_count: ["u32", 27], context_length: ["u32", 163_840], embedding_length: ["u32", 2048], feed_forward_length: ["u32", 10944],
  "attention.head_count": ["u32", 16], "attention.layer_norm_rms_epsilon": ["f32", 1e-6], "attention.kv_lora_rank": ["u32", 512],
  // No q_lora_rank: V2-Lite's is null, so queries have one plain attn_q.
  leading_dense_block_count: ["u32", 1], expert_count: ["u32", 64], expert_used_count: ["u32", 6], expert_shared_count: ["u32", 2],
  expert_feed_forward_length: ["u32", 1408], expert_weights_scale: ["f32", 1],
  "rope.dimension_count": ["u32", 64], "rope.freq_base": ["f32", 10000], "rope.scaling.type": ["str", "yarn"], "rope.scaling.factor": ["f32", 40],
  "rope.scaling.original_context_length": ["u32", 4096], "rope.scaling.yarn_log_multiplier": ["f32", 0.0707], vocab_size: ["u32", 102_400],
};
const DEEPSEEK_V2_LITE_GLOBAL: Tensors = { "token_embd.weight": [2048, 102_400], "output_norm.weight": [2048], "output.weight": [2048, 102_400] };
/** The norms and attention of every layer, less kv_b, which is where the two forms differ. */
const DEEPSEEK_V2_LITE_ATTENTION: Tensors = {
  "attn_norm.weight": [2048], "attn_q.weight": [2048, 3072], "attn_kv_a_mqa.weight": [2048, 576], "attn_kv_a_norm.weight": [512],
  "attn_output.weight": [2048, 2048], "ffn_norm.weight": [2048],
};
const DEEPSEEK_V2_LITE_DENSE_FFN: Tensors = { "ffn_gate.weight": [2048, 10944], "ffn_up.weight": [2048, 10944], "ffn_down.weight": [10944, 2048] };
/** 64 routed experts and 2 shared ones, merged into one shared FFN of 2 × 1408 = 2816; no exp_probs_b (V3 only). */
const DEEPSEEK_V2_LITE_MOE_FFN: Tensors = {
  "ffn_gate_inp.weight": [2048, 64], "ffn_gate_exps.weight": [2048, 1408, 64], "ffn_up_exps.weight": [2048, 1408, 64], "ffn_down_exps.weight": [1408, 2048, 64],
  "ffn_gate_shexp.weight": [2048, 2816], "ffn_up_shexp.weight": [2048, 2816], "ffn_down_shexp.weight": [2816, 2048],
};
/** The current converter splits kv_b per head for MLA: k_b {qk_nope, kv_lora, head}, v_b {kv_lora, v_head, head}. */
const DEEPSEEK_V2_LITE_SPLIT_KV_B: Tensors = { "attn_k_b.weight": [128, 512, 16], "attn_v_b.weight": [512, 128, 16] };
/** Older files keep kv_b whole: {kv_lora, head × (qk_nope + v_head)}. */
const DEEPSEEK_V2_LITE_LEGACY_KV_B: Tensors = { "attn_kv_b.weight": [512, 4096] };

const MODELS: readonly RealModel[] = [
  {
    name: "Qwen2.5-0.5B-Instruct",
    arch: "qwen2",
    keys: { block_count: ["u32", 24], context_length: ["u32", 32768], embedding_length: ["u32", 896], feed_forward_length: ["u32", 4864], "attention.head_count": ["u32", 14], "attention.head_count_kv": ["u32", 2], "rope.freq_base": ["f32", 1_000_000], "attention.layer_norm_rms_epsilon": ["f32", 1e-6] },
    vocab: 151_936,
    global: { "token_embd.weight": [896, 151_936], "output_norm.weight": [896], "output.weight": [896, 151_936] },
    layer: {
      "attn_norm.weight": [896], "attn_q.weight": [896, 896], "attn_q.bias": [896], "attn_k.weight": [896, 128], "attn_k.bias": [128],
      "attn_v.weight": [896, 128], "attn_v.bias": [128], "attn_output.weight": [896, 896], "ffn_norm.weight": [896],
      "ffn_gate.weight": [896, 4864], "ffn_up.weight": [896, 4864], "ffn_down.weight": [4864, 896],
    },
    layers: 24,
    tensors: 291,
  },
  {
    name: "Qwen2.5-7B-Instruct",
    arch: "qwen2",
    keys: { block_count: ["u32", 28], context_length: ["u32", 32768], embedding_length: ["u32", 3584], feed_forward_length: ["u32", 18944], "attention.head_count": ["u32", 28], "attention.head_count_kv": ["u32", 4], "rope.freq_base": ["f32", 1_000_000], "attention.layer_norm_rms_epsilon": ["f32", 1e-6] },
    vocab: 152_064,
    global: { "token_embd.weight": [3584, 152_064], "output_norm.weight": [3584], "output.weight": [3584, 152_064] },
    layer: {
      "attn_norm.weight": [3584], "attn_q.weight": [3584, 3584], "attn_q.bias": [3584], "attn_k.weight": [3584, 512], "attn_k.bias": [512],
      "attn_v.weight": [3584, 512], "attn_v.bias": [512], "attn_output.weight": [3584, 3584], "ffn_norm.weight": [3584],
      "ffn_gate.weight": [3584, 18944], "ffn_up.weight": [3584, 18944], "ffn_down.weight": [18944, 3584],
    },
    layers: 28,
    tensors: 339,
  },
  {
    name: "Llama-3.1-8B-Instruct",
    arch: "llama",
    keys: { block_count: ["u32", 32], context_length: ["u32", 131072], embedding_length: ["u32", 4096], feed_forward_length: ["u32", 14336], "attention.head_count": ["u32", 32], "attention.head_count_kv": ["u32", 8], "rope.freq_base": ["f32", 500_000], "attention.layer_norm_rms_epsilon": ["f32", 1e-5], "rope.dimension_count": ["u32", 128], vocab_size: ["u32", 128_256] },
    vocab: 128_256,
    global: { "token_embd.weight": [4096, 128_256], "rope_freqs.weight": [64], "output_norm.weight": [4096], "output.weight": [4096, 128_256] },
    layer: {
      "attn_norm.weight": [4096], "attn_q.weight": [4096, 4096], "attn_k.weight": [4096, 1024], "attn_v.weight": [4096, 1024],
      "attn_output.weight": [4096, 4096], "ffn_norm.weight": [4096], "ffn_gate.weight": [4096, 14336], "ffn_up.weight": [4096, 14336], "ffn_down.weight": [14336, 4096],
    },
    layers: 32,
    tensors: 292,
  },
  {
    name: "Qwen3-8B",
    arch: "qwen3",
    keys: { block_count: ["u32", 36], context_length: ["u32", 40960], embedding_length: ["u32", 4096], feed_forward_length: ["u32", 12288], "attention.head_count": ["u32", 32], "attention.head_count_kv": ["u32", 8], "attention.key_length": ["u32", 128], "attention.value_length": ["u32", 128], "rope.freq_base": ["f32", 1_000_000], "attention.layer_norm_rms_epsilon": ["f32", 1e-6] },
    vocab: 151_936,
    global: { "token_embd.weight": [4096, 151_936], "output_norm.weight": [4096], "output.weight": [4096, 151_936] },
    layer: {
      "attn_norm.weight": [4096], "attn_q.weight": [4096, 4096], "attn_k.weight": [4096, 1024], "attn_v.weight": [4096, 1024],
      "attn_q_norm.weight": [128], "attn_k_norm.weight": [128], "attn_output.weight": [4096, 4096], "ffn_norm.weight": [4096],
      "ffn_gate.weight": [4096, 12288], "ffn_up.weight": [4096, 12288], "ffn_down.weight": [12288, 4096],
    },
    layers: 36,
    tensors: 399,
  },
  {
    // Mixtral is arch llama with experts: the expert width is feed_forward_length, merged into 3-D tensors.
    name: "Mixtral-8x7B-Instruct-v0.1",
    arch: "llama",
    keys: {
      block_count: ["u32", 32], context_length: ["u32", 32768], embedding_length: ["u32", 4096], feed_forward_length: ["u32", 14336],
      "attention.head_count": ["u32", 32], "attention.head_count_kv": ["u32", 8], "rope.freq_base": ["f32", 1_000_000],
      "attention.layer_norm_rms_epsilon": ["f32", 1e-5], "rope.dimension_count": ["u32", 128], vocab_size: ["u32", 32000],
      expert_count: ["u32", 8], expert_used_count: ["u32", 2],
    },
    vocab: 32000,
    global: { "token_embd.weight": [4096, 32000], "output_norm.weight": [4096], "output.weight": [4096, 32000] },
    layer: {
      "attn_norm.weight": [4096], "attn_q.weight": [4096, 4096], "attn_k.weight": [4096, 1024], "attn_v.weight": [4096, 1024],
      "attn_output.weight": [4096, 4096], "ffn_norm.weight": [4096], "ffn_gate_inp.weight": [4096, 8],
      "ffn_gate_exps.weight": [4096, 14336, 8], "ffn_up_exps.weight": [4096, 14336, 8], "ffn_down_exps.weight": [14336, 4096, 8],
    },
    layers: 32,
    tensors: 323,
  },
  {
    // q/k/v biases and a shared expert with its own sigmoid gate, written 1-D ({2048}, not {2048, 1}).
    name: "Qwen1.5-MoE-A2.7B-Chat",
    arch: "qwen2moe",
    keys: {
      block_count: ["u32", 24], context_length: ["u32", 32768], embedding_length: ["u32", 2048], feed_forward_length: ["u32", 5632],
      "attention.head_count": ["u32", 16], "attention.head_count_kv": ["u32", 16], "rope.freq_base": ["f32", 1_000_000],
      "attention.layer_norm_rms_epsilon": ["f32", 1e-6], expert_count: ["u32", 60], expert_used_count: ["u32", 4],
      expert_feed_forward_length: ["u32", 1408], expert_shared_feed_forward_length: ["u32", 5632],
    },
    vocab: 151_936,
    global: { "token_embd.weight": [2048, 151_936], "output_norm.weight": [2048], "output.weight": [2048, 151_936] },
    layer: {
      "attn_norm.weight": [2048], "attn_q.weight": [2048, 2048], "attn_q.bias": [2048], "attn_k.weight": [2048, 2048], "attn_k.bias": [2048],
      "attn_v.weight": [2048, 2048], "attn_v.bias": [2048], "attn_output.weight": [2048, 2048], "ffn_norm.weight": [2048],
      "ffn_gate_inp.weight": [2048, 60], "ffn_gate_exps.weight": [2048, 1408, 60], "ffn_up_exps.weight": [2048, 1408, 60], "ffn_down_exps.weight": [1408, 2048, 60],
      "ffn_gate_inp_shexp.weight": [2048], "ffn_gate_shexp.weight": [2048, 5632], "ffn_up_shexp.weight": [2048, 5632], "ffn_down_shexp.weight": [5632, 2048],
    },
    layers: 24,
    tensors: 411,
  },
  {
    // head_dim 128 is not 2048 / 32 = 64: without key_length/value_length every attention shape is wrong.
    name: "Qwen3-30B-A3B",
    arch: "qwen3moe",
    keys: {
      block_count: ["u32", 48], context_length: ["u32", 40960], embedding_length: ["u32", 2048], feed_forward_length: ["u32", 6144],
      "attention.head_count": ["u32", 32], "attention.head_count_kv": ["u32", 4], "attention.key_length": ["u32", 128], "attention.value_length": ["u32", 128],
      "rope.freq_base": ["f32", 1_000_000], "attention.layer_norm_rms_epsilon": ["f32", 1e-6],
      expert_count: ["u32", 128], expert_used_count: ["u32", 8], expert_feed_forward_length: ["u32", 768],
    },
    vocab: 151_936,
    global: { "token_embd.weight": [2048, 151_936], "output_norm.weight": [2048], "output.weight": [2048, 151_936] },
    layer: {
      "attn_norm.weight": [2048], "attn_q.weight": [2048, 4096], "attn_k.weight": [2048, 512], "attn_v.weight": [2048, 512],
      "attn_q_norm.weight": [128], "attn_k_norm.weight": [128], "attn_output.weight": [4096, 2048], "ffn_norm.weight": [2048],
      "ffn_gate_inp.weight": [2048, 128], "ffn_gate_exps.weight": [2048, 768, 128], "ffn_up_exps.weight": [2048, 768, 128], "ffn_down_exps.weight": [768, 2048, 128],
    },
    layers: 48,
    tensors: 579,
  },
  {
    // Always tied (gemma2 never reads output.weight); head_dim 256 is not 3584 / 16 = 224.
    name: "gemma-2-9b-it",
    arch: "gemma2",
    keys: {
      block_count: ["u32", 42], context_length: ["u32", 8192], embedding_length: ["u32", 3584], feed_forward_length: ["u32", 14336],
      "attention.head_count": ["u32", 16], "attention.head_count_kv": ["u32", 8], "attention.key_length": ["u32", 256], "attention.value_length": ["u32", 256],
      "attention.layer_norm_rms_epsilon": ["f32", 1e-6], "attention.sliding_window": ["u32", 4096],
      attn_logit_softcapping: ["f32", 50], final_logit_softcapping: ["f32", 30],
    },
    vocab: 256_000,
    global: { "token_embd.weight": [3584, 256_000], "output_norm.weight": [3584] },
    layer: {
      "attn_norm.weight": [3584], "attn_q.weight": [3584, 4096], "attn_k.weight": [3584, 2048], "attn_v.weight": [3584, 2048],
      "attn_output.weight": [4096, 3584], "post_attention_norm.weight": [3584], "ffn_norm.weight": [3584],
      "ffn_gate.weight": [3584, 14336], "ffn_up.weight": [3584, 14336], "ffn_down.weight": [14336, 3584], "post_ffw_norm.weight": [3584],
    },
    layers: 42,
    tensors: 464,
  },
  {
    // The text model only. The converter trims the vocabulary to the tokenizer's 262144 (HF says 262208).
    name: "gemma-3-12b-it",
    arch: "gemma3",
    keys: {
      block_count: ["u32", 48], context_length: ["u32", 131072], embedding_length: ["u32", 3840], feed_forward_length: ["u32", 15360],
      "attention.head_count": ["u32", 16], "attention.head_count_kv": ["u32", 8], "attention.key_length": ["u32", 256], "attention.value_length": ["u32", 256],
      "attention.layer_norm_rms_epsilon": ["f32", 1e-6], "attention.sliding_window": ["u32", 1024], "rope.freq_base": ["f32", 1_000_000],
      "rope.scaling.type": ["str", "linear"], "rope.scaling.factor": ["f32", 8],
    },
    vocab: 262_144,
    global: { "token_embd.weight": [3840, 262_144], "output_norm.weight": [3840] },
    layer: {
      "attn_norm.weight": [3840], "attn_q.weight": [3840, 4096], "attn_k.weight": [3840, 2048], "attn_v.weight": [3840, 2048],
      "attn_output.weight": [4096, 3840], "post_attention_norm.weight": [3840], "attn_q_norm.weight": [256], "attn_k_norm.weight": [256],
      "ffn_norm.weight": [3840], "ffn_gate.weight": [3840, 15360], "ffn_up.weight": [3840, 15360], "ffn_down.weight": [15360, 3840], "post_ffw_norm.weight": [3840],
    },
    layers: 48,
    tensors: 626,
  },
  {
    // Fused q/k/v (3072 + 2 × 1024) and fused gate+up (2 × 8192); longrope factors are global,
    // n_rot / 2 = 96 / 2 = 48 long; tied, so no output.weight.
    name: "Phi-4-mini-instruct",
    arch: "phi3",
    keys: {
      block_count: ["u32", 32], context_length: ["u32", 131072], embedding_length: ["u32", 3072], feed_forward_length: ["u32", 8192],
      "attention.head_count": ["u32", 24], "attention.head_count_kv": ["u32", 8], "attention.layer_norm_rms_epsilon": ["f32", 1e-5],
      "rope.dimension_count": ["u32", 96], "rope.freq_base": ["f32", 10000], "rope.scaling.original_context_length": ["u32", 4096],
      "rope.scaling.attn_factor": ["f32", 1.190238], "attention.sliding_window": ["u32", 262_144],
    },
    vocab: 200_064,
    global: { "token_embd.weight": [3072, 200_064], "output_norm.weight": [3072], "rope_factors_long.weight": [48], "rope_factors_short.weight": [48] },
    layer: {
      "attn_norm.weight": [3072], "attn_qkv.weight": [3072, 5120], "attn_output.weight": [3072, 3072], "ffn_norm.weight": [3072],
      "ffn_up.weight": [3072, 16384], "ffn_down.weight": [8192, 3072],
    },
    layers: 32,
    tensors: 196,
  },
  {
    // What the current converter writes: MLA as MQA (one KV head of 512 + 64), with the
    // real per-head sizes in the *_mla keys and kv_b split per head.
    name: "DeepSeek-V2-Lite-Chat (MLA split)",
    arch: "deepseek2",
    keys: {
      ...DEEPSEEK_V2_LITE_KEYS,
      "attention.head_count_kv": ["u32", 1], "attention.key_length": ["u32", 576], "attention.value_length": ["u32", 512],
      "attention.key_length_mla": ["u32", 192], "attention.value_length_mla": ["u32", 128],
    },
    vocab: 102_400,
    global: DEEPSEEK_V2_LITE_GLOBAL,
    firstLayers: { count: 1, layer: { ...DEEPSEEK_V2_LITE_ATTENTION, ...DEEPSEEK_V2_LITE_SPLIT_KV_B, ...DEEPSEEK_V2_LITE_DENSE_FFN } },
    layer: { ...DEEPSEEK_V2_LITE_ATTENTION, ...DEEPSEEK_V2_LITE_SPLIT_KV_B, ...DEEPSEEK_V2_LITE_MOE_FFN },
    layers: 27,
    tensors: 404, // 3 + 1 × 11 + 26 × 15
  },
  {
    // The form of the published Q4_K_M files: no *_mla keys, 16 KV heads of 192 / 128, kv_b whole.
    name: "DeepSeek-V2-Lite-Chat (legacy kv_b)",
    arch: "deepseek2",
    keys: {
      ...DEEPSEEK_V2_LITE_KEYS,
      "attention.head_count_kv": ["u32", 16], "attention.key_length": ["u32", 192], "attention.value_length": ["u32", 128],
    },
    vocab: 102_400,
    global: DEEPSEEK_V2_LITE_GLOBAL,
    firstLayers: { count: 1, layer: { ...DEEPSEEK_V2_LITE_ATTENTION, ...DEEPSEEK_V2_LITE_LEGACY_KV_B, ...DEEPSEEK_V2_LITE_DENSE_FFN } },
    layer: { ...DEEPSEEK_V2_LITE_ATTENTION, ...DEEPSEEK_V2_LITE_LEGACY_KV_B, ...DEEPSEEK_V2_LITE_MOE_FFN },
    layers: 27,
    tensors: 377, // 3 + 1 × 10 + 26 × 14
  },
  {
    // Every projection and expert has a bias (expert biases are 2-D, one row per expert), plus
    // per-head attention sinks. head_dim 64 is not 2880 / 64 = 45, so key_length is essential.
    name: "gpt-oss-20b",
    arch: "gpt-oss",
    keys: {
      block_count: ["u32", 24], context_length: ["u32", 131072], embedding_length: ["u32", 2880], feed_forward_length: ["u32", 2880],
      "attention.head_count": ["u32", 64], "attention.head_count_kv": ["u32", 8], "attention.key_length": ["u32", 64], "attention.value_length": ["u32", 64],
      "attention.layer_norm_rms_epsilon": ["f32", 1e-5], "attention.sliding_window": ["u32", 128], "rope.freq_base": ["f32", 150_000],
      "rope.scaling.type": ["str", "yarn"], "rope.scaling.factor": ["f32", 32], "rope.scaling.original_context_length": ["u32", 4096],
      expert_count: ["u32", 32], expert_used_count: ["u32", 4], expert_feed_forward_length: ["u32", 2880],
    },
    vocab: 201_088,
    global: { "token_embd.weight": [2880, 201_088], "output_norm.weight": [2880], "output.weight": [2880, 201_088] },
    layer: {
      "attn_norm.weight": [2880], "post_attention_norm.weight": [2880],
      "attn_q.weight": [2880, 4096], "attn_q.bias": [4096], "attn_k.weight": [2880, 512], "attn_k.bias": [512],
      "attn_v.weight": [2880, 512], "attn_v.bias": [512], "attn_output.weight": [4096, 2880], "attn_output.bias": [2880], "attn_sinks.weight": [64],
      "ffn_gate_inp.weight": [2880, 32], "ffn_gate_inp.bias": [32],
      "ffn_gate_exps.weight": [2880, 2880, 32], "ffn_gate_exps.bias": [2880, 32], "ffn_up_exps.weight": [2880, 2880, 32], "ffn_up_exps.bias": [2880, 32],
      "ffn_down_exps.weight": [2880, 2880, 32], "ffn_down_exps.bias": [2880, 32],
    },
    layers: 24,
    tensors: 459,
  },
  {
    // Llama's layout with Granite's four scales (all required f32); tied, so no output.weight.
    name: "granite-3.1-8b-instruct",
    arch: "granite",
    keys: {
      block_count: ["u32", 40], context_length: ["u32", 131072], embedding_length: ["u32", 4096], feed_forward_length: ["u32", 12800],
      "attention.head_count": ["u32", 32], "attention.head_count_kv": ["u32", 8], "rope.freq_base": ["f32", 10_000_000],
      "attention.layer_norm_rms_epsilon": ["f32", 1e-5], "rope.dimension_count": ["u32", 128], vocab_size: ["u32", 49155],
      logit_scale: ["f32", 16], residual_scale: ["f32", 0.22], embedding_scale: ["f32", 12], "attention.scale": ["f32", 0.0078125],
    },
    vocab: 49155,
    global: { "token_embd.weight": [4096, 49155], "output_norm.weight": [4096] },
    layer: {
      "attn_norm.weight": [4096], "attn_q.weight": [4096, 4096], "attn_k.weight": [4096, 1024], "attn_v.weight": [4096, 1024],
      "attn_output.weight": [4096, 4096], "ffn_norm.weight": [4096], "ffn_gate.weight": [4096, 12800], "ffn_up.weight": [4096, 12800], "ffn_down.weight": [12800, 4096],
    },
    layers: 40,
    tensors: 362,
  },
  {
    // Post-norms only (no attn_norm, no ffn_norm); q/k norms span the whole projection, not a head.
    name: "OLMo-2-1124-7B-Instruct",
    arch: "olmo2",
    keys: {
      block_count: ["u32", 32], context_length: ["u32", 4096], embedding_length: ["u32", 4096], feed_forward_length: ["u32", 11008],
      "attention.head_count": ["u32", 32], "attention.head_count_kv": ["u32", 32], "rope.freq_base": ["f32", 500_000],
      "attention.layer_norm_rms_epsilon": ["f32", 1e-6],
    },
    vocab: 100_352,
    global: { "token_embd.weight": [4096, 100_352], "output_norm.weight": [4096], "output.weight": [4096, 100_352] },
    layer: {
      "attn_q.weight": [4096, 4096], "attn_k.weight": [4096, 4096], "attn_v.weight": [4096, 4096], "attn_output.weight": [4096, 4096],
      "attn_q_norm.weight": [4096], "attn_k_norm.weight": [4096], "post_attention_norm.weight": [4096],
      "ffn_gate.weight": [4096, 11008], "ffn_up.weight": [4096, 11008], "ffn_down.weight": [11008, 4096], "post_ffw_norm.weight": [4096],
    },
    layers: 32,
    tensors: 355,
  },
];

/** Every tensor of the row, with its shape: the globals, then each layer's. */
function tensorsOf(m: RealModel): [string, Shape][] {
  const out = Object.entries(m.global);
  for (let l = 0; l < m.layers; l++) {
    const layer = m.firstLayers && l < m.firstLayers.count ? m.firstLayers.layer : m.layer;
    for (const [name, shape] of Object.entries(layer)) out.push([`blk.${l}.${name}`, shape]);
  }
  return out;
}

/** The writer's form of a row's key value (the row says `str` for the writer's `string`). */
function valueOf([type, value]: KeyValue): WriteEntry["value"] {
  return (type === "str" ? { type: "string", value } : { type, value }) as WriteEntry["value"];
}

/** A header-only GGUF file (the data section a hole) holding exactly the row's keys, vocabulary and tensors. */
function fileOf(m: RealModel, dir: string, change?: { tensor: string; shape: Shape }): string {
  const metadata: WriteEntry[] = [
    { key: "general.architecture", value: { type: "string", value: m.arch } },
    ...Object.entries(m.keys).map(([k, v]) => ({ key: `${m.arch}.${k}`, value: valueOf(v) })),
    { key: "tokenizer.ggml.tokens", value: { type: "array", itemType: "string", length: m.vocab, items: StringArray.from(Array.from({ length: m.vocab }, (_, i) => `t${i}`)) } },
  ];
  const tensors = tensorsOf(m).map(([name, shape]) => ({ name, type: shape.length === 1 ? GgmlType.F32 : GgmlType.F16, shape: change?.tensor === name ? change.shape : shape }));
  const path = join(dir, `${m.name}${change ? "-changed" : ""}.sparse.gguf`);
  writeGgufFile(path, encodeHeader({ metadata, tensors }), () => {}, { sparse: true });
  return path;
}

let dir = "";
beforeAll(() => {
  dir = tempDir("gguf-vram-real-shapes-");
});

describe("the registry against published configs", () => {
  for (const m of MODELS) {
    test(`${m.name}: ${m.tensors} tensors, each with the shape the table gives`, async () => {
      const all = tensorsOf(m);
      expect(all.length).toBe(m.tensors);
      const check = checkModel(await readGguf(fileOf(m, dir)));
      expect(check.problems).toEqual([]);
      expect(check.warnings).toEqual([]);
      const expected = new Map(check.expected.map((e) => [e.name, e.shape.map((d) => d.size)]));
      for (const [name, shape] of all) expect([name, expected.get(name)]).toEqual([name, [...shape]]);
    });

    test(`${m.name}: one dimension off in a layer, and the registry names it`, async () => {
      // The first tensor of highest rank in the last layer: a 3-D expert tensor where the model
      // has them, and always one of `layer` rather than `firstLayers`.
      const lastLayer = tensorsOf(m).filter(([n]) => n.startsWith(`blk.${m.layers - 1}.`));
      const [name, shape] = lastLayer.reduce((best, t) => (t[1].length > best[1].length ? t : best));
      const wrong = shape.map((d, i) => (i === 1 ? d * 2 : d));
      const check = checkModel(await readGguf(fileOf(m, dir, { tensor: name, shape: wrong })));
      expect(check.ok).toBe(false);
      expect(check.problems.map((p) => [p.code, p.tensor])).toEqual([["BAD_SHAPE", name]]);
    });
  }
});
