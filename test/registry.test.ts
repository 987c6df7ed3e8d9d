// The registry against the real Qwen2.5 layouts and the llama family.

import { describe, expect, test } from "bun:test";
import { checkModel, FAMILIES } from "../src/arch/index.ts";
import { fixtureModel, modelTensors } from "../src/fixtures/models.ts";
import { q4kmTypes, usesMoreBits } from "../src/fixtures/recipe.ts";
import { buildModel, ensureModelFixture } from "../src/fixtures/generate.ts";
import { BROKEN_MODEL_CASES } from "../src/fixtures/broken-models.ts";
import { GgmlType, ggmlTypeName, readGguf } from "../src/gguf/index.ts";
import { fileBytes } from "../src/fixtures/corrupt.ts";
import { v } from "../src/fixtures/values.ts";
import { LoadError, ModelFile } from "../src/load/index.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** A fixture model written sparse: its real header, and a data section that is a hole. */
async function headerOf(name: string) {
  return readGguf(await ensureModelFixture(name, { sparse: true }));
}

function countByType(tensors: readonly { type: GgmlType }[]) {
  const out: Record<string, number> = {};
  for (const t of tensors) out[ggmlTypeName(t.type)] = (out[ggmlTypeName(t.type)] ?? 0) + 1;
  return out;
}

describe("Qwen2.5-0.5B-Instruct Q4_K_M", () => {
  test("291 tensors of the real file's types, 485,452,288 bytes, 26 keys, a valid model", async () => {
    const g = await headerOf("qwen2.5-0.5b-instruct-q4_k_m");
    expect(g.tensors.length).toBe(291);
    expect(countByType(g.tensors)).toEqual({ F32: 121, Q5_0: 133, Q8_0: 13, Q4_K: 12, Q6_K: 12 });
    expect(g.tensorDataBytes).toBe(485_452_288);
    expect(g.metadata.size).toBe(26);
    expect(g.alignment).toBe(32);
    expect(g.version).toBe(3);
    const check = checkModel(g);
    expect(check.problems).toEqual([]);
    expect(check.warnings).toEqual([]);
    expect(check.tiedHead).toBe(false);
    expect(check.config).toMatchObject({
      architecture: "qwen2", vocabSize: 151936, hiddenSize: 896, layers: 24, heads: 14, kvHeads: 2, headDim: 64, valueDim: 64, ropeDim: 64,
      ffnSize: 4864, contextLength: 32768, ropeBase: 1e6, ropeScaling: "linear", normEpsilon: 1e-6, experts: 0, expertsUsed: 0,
    });
  });

  test("shapes and types tensor by tensor, as the real file has them", async () => {
    const g = await headerOf("qwen2.5-0.5b-instruct-q4_k_m");
    const is = (name: string, type: string, shape: number[]) => {
      const t = g.tensor(name)!;
      expect([name, ggmlTypeName(t.type), t.shape]).toEqual([name, type, shape]);
    };
    is("token_embd.weight", "Q5_0", [896, 151936]);
    is("output.weight", "Q8_0", [896, 151936]);
    is("output_norm.weight", "F32", [896]);
    const moreBits = [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23];
    for (let l = 0; l < 24; l++) {
      const more = moreBits.includes(l);
      is(`blk.${l}.attn_q.weight`, "Q5_0", [896, 896]);
      is(`blk.${l}.attn_output.weight`, "Q5_0", [896, 896]);
      is(`blk.${l}.attn_k.weight`, "Q5_0", [896, 128]);
      is(`blk.${l}.attn_v.weight`, more ? "Q8_0" : "Q5_0", [896, 128]);
      is(`blk.${l}.ffn_gate.weight`, "Q5_0", [896, 4864]);
      is(`blk.${l}.ffn_up.weight`, "Q5_0", [896, 4864]);
      is(`blk.${l}.ffn_down.weight`, more ? "Q6_K" : "Q4_K", [4864, 896]);
      is(`blk.${l}.attn_q.bias`, "F32", [896]);
      is(`blk.${l}.attn_k.bias`, "F32", [128]);
      is(`blk.${l}.attn_v.bias`, "F32", [128]);
      is(`blk.${l}.attn_norm.weight`, "F32", [896]);
      is(`blk.${l}.ffn_norm.weight`, "F32", [896]);
    }
  });

  test("the real file's 26 metadata keys and values", async () => {
    const g = await headerOf("qwen2.5-0.5b-instruct-q4_k_m");
    expect([...g.metadata.keys()].sort()).toEqual([
      "general.architecture", "general.file_type", "general.finetune", "general.name", "general.quantization_version", "general.size_label",
      "general.type", "general.version", "qwen2.attention.head_count", "qwen2.attention.head_count_kv", "qwen2.attention.layer_norm_rms_epsilon",
      "qwen2.block_count", "qwen2.context_length", "qwen2.embedding_length", "qwen2.feed_forward_length", "qwen2.rope.freq_base",
      "tokenizer.chat_template", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.merges",
      "tokenizer.ggml.model", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.pre", "tokenizer.ggml.token_type", "tokenizer.ggml.tokens",
    ]);
    expect(g.get("general.file_type")).toEqual({ type: "u32", value: 15 });
    expect(g.get("qwen2.rope.freq_base")).toEqual({ type: "f32", value: 1_000_000 });
    const tokens = g.get("tokenizer.ggml.tokens");
    const merges = g.get("tokenizer.ggml.merges");
    expect(tokens?.type === "array" && tokens.length).toBe(151_936);
    expect(merges?.type === "array" && merges.length).toBe(151_387);
  });

  test("the tied build: 290 tensors, the head tied to token_embd", async () => {
    const g = await headerOf("qwen2.5-0.5b-instruct-q4_k_m-tied");
    expect(g.tensors.length).toBe(290);
    expect(g.tensor("output.weight")).toBeUndefined();
    const check = checkModel(g);
    expect(check.ok).toBe(true);
    expect(check.tiedHead).toBe(true);
  });
});

describe("other layouts", () => {
  test("Qwen2.5-7B Q4_K_M: 339 tensors, about 4.68 GB, K-quants throughout", async () => {
    const g = await headerOf("qwen2.5-7b-instruct-q4_k_m");
    expect(g.tensors.length).toBe(28 * 12 + 3);
    expect(countByType(g.tensors)).toEqual({ F32: 141, Q4_K: 169, Q6_K: 29 });
    expect(g.tensorDataBytes).toBe(4_677_120_000);
    expect(g.tensor("token_embd.weight")!.shape).toEqual([3584, 152064]);
    expect(g.tensor("blk.0.attn_k.weight")!.shape).toEqual([3584, 512]);
    expect(checkModel(g).ok).toBe(true);
  });

  test("F16: every matrix F16, norms and biases F32", async () => {
    const g = await headerOf("qwen2.5-0.5b-instruct-f16");
    expect(countByType(g.tensors)).toEqual({ F32: 121, F16: 170 });
    expect(checkModel(g).ok).toBe(true);
  });

  test("the llama family: no biases, a tied head, GQA shapes", async () => {
    const g = await headerOf("tiny-llama-mixed");
    const check = checkModel(g);
    expect(check.problems).toEqual([]);
    expect(check.architecture).toBe("llama");
    expect(check.tiedHead).toBe(true);
    expect(g.tensor("blk.0.attn_q.bias")).toBeUndefined();
    expect(g.tensor("blk.2.attn_k.weight")!.shape).toEqual([128, 64]);
  });

  test("the registry knows qwen2 and llama, and tables are derived from the config", () => {
    expect([...FAMILIES.keys()]).toEqual(expect.arrayContaining(["qwen2", "llama"]));
    const m = fixtureModel("tiny-qwen2-q4_k_m");
    expect(modelTensors(m).length).toBe(2 * 12 + 3);
  });
});

describe("the Q4_K_M recipe", () => {
  test("more bits on the first and last eighth and every third layer between", () => {
    const layers = Array.from({ length: 24 }, (_, l) => l).filter((l) => usesMoreBits(l, 24));
    expect(layers).toEqual([0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]);
  });
  test("falls back from K-quants where rows are not whole 256-blocks", () => {
    // Layers 0–3 of 24: llama-quantize counts ffn_down and attn_v tensors as it walks the layers.
    const layers = [0, 1, 2, 3].flatMap((l) => [
      { name: `blk.${l}.ffn_gate.weight`, shape: [896, 4864] },
      { name: `blk.${l}.ffn_down.weight`, shape: [4864, 896] },
      { name: `blk.${l}.attn_v.weight`, shape: [896, 128] },
    ]);
    const types = q4kmTypes([...layers, { name: "output.weight", shape: [896, 151_936] }], { layers: 24, experts: 0 });
    expect(types.get("blk.3.ffn_gate.weight")).toBe(GgmlType.Q5_0); // Q4_K, but 896 is not whole 256-blocks
    expect(types.get("blk.3.ffn_down.weight")).toBe(GgmlType.Q4_K); // layer 3 of 24 does not use more bits
    expect(types.get("blk.2.ffn_down.weight")).toBe(GgmlType.Q6_K); // layer 2 does
    expect(types.get("output.weight")).toBe(GgmlType.Q8_0); // Q6_K, falling back
    // attn_v is counted among the file's attn_v tensors (4 here): the last of 4 uses more bits.
    expect(types.get("blk.3.attn_v.weight")).toBe(GgmlType.Q8_0); // Q6_K, falling back
    expect(types.get("blk.0.attn_v.weight")).toBe(GgmlType.Q5_0);
  });

  test("8 experts: attn_v and attn_k in Q8_0, attn_output in Q5_K; norms, routers and biases never quantized", () => {
    const types = q4kmTypes(
      [
        { name: "blk.0.attn_v.weight", shape: [256, 128] },
        { name: "blk.0.attn_k.weight", shape: [256, 128] },
        { name: "blk.0.attn_output.weight", shape: [256, 256] },
        { name: "blk.0.ffn_gate_inp.weight", shape: [256, 8] },
        { name: "blk.0.attn_norm.weight", shape: [256] },
        { name: "blk.0.ffn_down_exps.weight", shape: [512, 256, 8] },
        { name: "blk.2.ffn_down_exps.weight", shape: [512, 256, 8] },
        { name: "blk.0.ffn_gate_exps.bias", shape: [512, 8] },
        { name: "blk.0.ffn_up_exps.weight", shape: [256, 512, 8], source: GgmlType.MXFP4 },
      ],
      { layers: 3, experts: 8 },
    );
    expect(Object.fromEntries([...types].map(([n, t]) => [n, ggmlTypeName(t)]))).toEqual({
      "blk.0.attn_v.weight": "Q8_0",
      "blk.0.attn_k.weight": "Q8_0",
      "blk.0.attn_output.weight": "Q5_K",
      "blk.0.ffn_gate_inp.weight": "F32",
      "blk.0.attn_norm.weight": "F32",
      "blk.0.ffn_down_exps.weight": "Q4_K", // a MoE model's layer comes from the name: 0 of 3 does not use more bits
      "blk.2.ffn_down_exps.weight": "Q6_K", // 2 of 3 does
      "blk.0.ffn_gate_exps.bias": "F32",
      "blk.0.ffn_up_exps.weight": "MXFP4", // requantizing MXFP4 is refused by llama-quantize: kept
    });
  });
});

describe("problems name the tensor or key and the reason", () => {
  const byName = Object.fromEntries(BROKEN_MODEL_CASES.map((c) => [c.name, c]));
  const problems = async (name: string) => checkModel(await readGguf(new Blob([await byName[name]!.bytes()]))).problems;

  test("a wrong shape explains the expected size", async () => {
    expect((await problems("wrong-shape")).map((p) => p.message)).toEqual([
      "blk.1.attn_k.weight has shape [256, 256]; expected [256, 128] (head_count_kv 2 × head_dim 64)",
    ]);
  });
  test("a missing tensor is named", async () => {
    expect(await problems("tensor-missing")).toEqual([
      { code: "TENSOR_MISSING", tensor: "blk.1.ffn_up.weight", message: "blk.1.ffn_up.weight is missing; every qwen2 model has it" },
    ]);
  });
  test("a layer-count mismatch is one problem, not a missing tensor per layer", async () => {
    const p = await problems("layer-count-too-large");
    expect(p.map((x) => x.code)).toEqual(["LAYER_COUNT_MISMATCH"]);
    expect(p[0]!.message).toBe("qwen2.block_count is 3, but the file has no tensors for layer 2");
  });
  test("an extra tensor is refused, as llama.cpp refuses it", async () => {
    const built = await buildModel(fixtureModel("tiny-qwen2-q4_k_m"));
    const { encodeHeader } = await import("../src/gguf/writer.ts");
    const { modelMetadata } = await import("../src/fixtures/models.ts");
    const m = fixtureModel("tiny-qwen2-q4_k_m");
    const h = encodeHeader({ metadata: await modelMetadata(m), tensors: [...modelTensors(m), { name: "blk.0.extra.weight", type: GgmlType.F32, shape: [4] }] });
    const check = checkModel(await readGguf(new Blob([fileBytes(h)])));
    expect(check.ok).toBe(false);
    expect(check.problems).toEqual([
      { code: "EXTRA_TENSOR", tensor: "blk.0.extra.weight", message: "blk.0.extra.weight is not part of a qwen2 model; llama.cpp refuses a file with tensors it does not use" },
    ]);
    expect(built.header.placements.length).toBe(27);
  });
});

describe("a metadata array of arrays", () => {
  test("is the model's one problem, naming the key and llama.cpp's reader; the loader refuses it, --unchecked loads it", async () => {
    const m = fixtureModel("tiny-qwen2-q4_k_m");
    const { encodeHeader } = await import("../src/gguf/writer.ts");
    const { modelMetadata } = await import("../src/fixtures/models.ts");
    const metadata = [...(await modelMetadata(m)), { key: "test.grid", value: v.arrays([v.u32s(new Uint32Array([1, 2])), v.arrays([])]) }];
    const path = join(mkdtempSync(join(tmpdir(), "gguf-vram-registry-")), "grid.gguf");
    writeFileSync(path, fileBytes(encodeHeader({ metadata, tensors: modelTensors(m) })));
    const message = "test.grid is an array of arrays, which llama.cpp's GGUF reader (gguf.cpp) refuses: llama.cpp cannot open this file (--unchecked loads it here anyway)";
    const check = checkModel(await readGguf(path));
    expect(check.problems).toEqual([{ code: "NESTED_ARRAY", key: "test.grid", message }]);
    expect(check.config?.architecture).toBe("qwen2"); // the rest of the model is checked, and whole

    const e = (await ModelFile.open(path).catch((x: unknown) => x)) as LoadError;
    expect(e).toBeInstanceOf(LoadError);
    expect([e.code, e.message, e.exitCode]).toEqual(["INVALID_MODEL", `${path}: ${message}`, 1]);
    // The format is valid and the tensors are the model's: --unchecked loads every one as the file has it.
    using f = await ModelFile.open(path, { unchecked: true });
    expect([f.unchecked, f.gguf.tensors.length, f.check.problems.map((p) => p.code)]).toEqual([true, 27, ["NESTED_ARRAY"]]);
    rmSync(dirname(path), { recursive: true, force: true });
  });
});
