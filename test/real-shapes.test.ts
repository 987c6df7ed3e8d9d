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

type Shape = readonly number[];

interface RealModel {
  readonly name: string;
  readonly arch: string;
  /** Keys under `<arch>.`, with their GGUF types as the converter writes them. */
  readonly keys: Readonly<Record<string, ["u32", number] | ["f32", number]>>;
  readonly vocab: number;
  /** Tensors outside the layers. */
  readonly global: Readonly<Record<string, Shape>>;
  /** The tensors of every layer, by their name after `blk.N.`. */
  readonly layer: Readonly<Record<string, Shape>>;
  readonly layers: number;
  /** The GGUF tensor count, from the model's published file or worked out by hand. */
  readonly tensors: number;
}

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
];

/** Every tensor of the row, with its shape: the globals, then each layer's. */
function tensorsOf(m: RealModel): [string, Shape][] {
  const out = Object.entries(m.global);
  for (let l = 0; l < m.layers; l++) for (const [name, shape] of Object.entries(m.layer)) out.push([`blk.${l}.${name}`, shape]);
  return out;
}

/** A header-only GGUF file (the data section a hole) holding exactly the row's keys, vocabulary and tensors. */
function fileOf(m: RealModel, dir: string, change?: { tensor: string; shape: Shape }): string {
  const metadata: WriteEntry[] = [
    { key: "general.architecture", value: { type: "string", value: m.arch } },
    ...Object.entries(m.keys).map(([k, [type, value]]) => ({ key: `${m.arch}.${k}`, value: { type, value } as WriteEntry["value"] })),
    { key: "tokenizer.ggml.tokens", value: { type: "array", itemType: "string", length: m.vocab, items: StringArray.from(Array.from({ length: m.vocab }, (_, i) => `t${i}`)) } },
  ];
  const tensors = tensorsOf(m).map(([name, shape]) => ({ name, type: shape.length === 1 ? GgmlType.F32 : GgmlType.F16, shape: change?.tensor === name ? change.shape : shape }));
  const path = join(dir, `${m.name}${change ? "-changed" : ""}.sparse.gguf`);
  writeGgufFile(path, encodeHeader({ metadata, tensors }), () => {}, { sparse: true });
  return path;
}

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "gguf-vram-real-shapes-"));
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
      const [name, shape] = tensorsOf(m).find(([n, s]) => n.startsWith(`blk.${m.layers - 1}.`) && s.length === 2)!;
      const wrong = [shape[0]!, shape[1]! * 2];
      const check = checkModel(await readGguf(fileOf(m, dir, { tensor: name, shape: wrong })));
      expect(check.ok).toBe(false);
      expect(check.problems.map((p) => [p.code, p.tensor])).toEqual([["BAD_SHAPE", name]]);
    });
  }
});
