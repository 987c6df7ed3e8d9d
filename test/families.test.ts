// Every family, on its tiny fixture: the model passes; each rule broken alone
// (a tensor missing, a shape wrong, a required key missing, a key of the wrong
// type, a tensor left over) is refused naming the tensor or key; and the rules
// each family adds (Gemma 2's head, DeepSeek's attention layouts, Phi-3's fused
// q/k/v, the MoE families' experts, heads that do not divide) hold.

import { describe, expect, test } from "bun:test";
import { checkModel, FAMILIES, type ModelCheck } from "../src/arch/index.ts";
import { fileBytes } from "../src/fixtures/corrupt.ts";
import { FIXTURE_MODELS, fixtureModel, modelMetadata, modelTensors, type ModelTensor } from "../src/fixtures/models.ts";
import { v } from "../src/fixtures/values.ts";
import { GgmlType, readGguf } from "../src/gguf/index.ts";
import { encodeHeader, type WriteEntry } from "../src/gguf/writer.ts";

type Parts = { metadata: WriteEntry[]; tensors: ModelTensor[] };

/** The fixture's header, edited, as the registry sees it. */
async function check(name: string, edit: (p: Parts) => void = () => {}): Promise<ModelCheck> {
  const m = fixtureModel(name);
  const parts: Parts = { metadata: await modelMetadata(m), tensors: modelTensors(m) };
  edit(parts);
  return checkModel(await readGguf(new Blob([fileBytes(encodeHeader(parts))])));
}

const setKey = (key: string, value: WriteEntry["value"]) => (p: Parts) => {
  const i = p.metadata.findIndex((e) => e.key === key);
  if (i < 0) p.metadata.push({ key, value });
  else p.metadata[i] = { key, value };
};
const dropKey = (key: string) => (p: Parts) => void p.metadata.splice(p.metadata.findIndex((e) => e.key === key), 1);
const dropTensor = (name: string) => (p: Parts) => void p.tensors.splice(p.tensors.findIndex((t) => t.name === name), 1);
const addTensor = (t: ModelTensor) => (p: Parts) => void p.tensors.push(t);
const problemsOf = (c: ModelCheck) => c.problems.map((p) => [p.code, p.tensor ?? p.key ?? null]);

/** The families' tiny fixtures (the older tiny llama and qwen2 ones test other things). */
const TINY = FIXTURE_MODELS.filter((m) => m.name.startsWith("tiny-") && !["tiny-llama-odd", "tiny-llama-mixed"].includes(m.name));

test("a tiny fixture for every family", () => {
  const families = new Set(TINY.map((m) => FAMILIES.get(m.config.architecture)!));
  expect(families.size).toBe(new Set(FAMILIES.values()).size);
  for (const m of TINY) expect([m.name, modelTensors(m).length > 20]).toEqual([m.name, true]);
});

for (const m of TINY) {
  const arch = m.config.architecture;
  const last = `blk.${m.config.layers - 1}.`;
  describe(`${m.name} (${arch})`, () => {
    test("passes, expecting exactly its tensors", async () => {
      const c = await check(m.name);
      expect(c.problems).toEqual([]);
      expect(c.warnings).toEqual([]);
      const required = c.expected.filter((e) => !e.optional).map((e) => e.name);
      const file = new Set(modelTensors(m).map((t) => t.name));
      for (const name of required) expect([name, file.has(name)]).toEqual([name, true]);
      expect(c.tiedHead).toBe(m.tied);
    });

    test("a required tensor missing is named", async () => {
      const c0 = await check(m.name);
      const victim = c0.expected.find((e) => e.name.startsWith(last) && !e.optional)!.name;
      expect(problemsOf(await check(m.name, dropTensor(victim)))).toEqual([["TENSOR_MISSING", victim]]);
    });

    test("a wrong shape is named, with the reason for the expected size", async () => {
      const victim = modelTensors(m).find((t) => t.name.startsWith(last) && t.shape.length >= 2)!;
      const c = await check(m.name, (p) => {
        const i = p.tensors.findIndex((t) => t.name === victim.name);
        p.tensors[i] = { ...victim, shape: [victim.shape[0]!, victim.shape[1]! + 1, ...victim.shape.slice(2)] };
      });
      expect(problemsOf(c)).toEqual([["BAD_SHAPE", victim.name]]);
      expect(c.problems[0]!.message).toMatch(/expected \[[\d, ]+\] \(.+\d.+\)/);
    });

    test("a required key missing, and a key of the wrong type, are named", async () => {
      expect(problemsOf(await check(m.name, dropKey(`${arch}.context_length`)))).toEqual([["MISSING_KEY", `${arch}.context_length`]]);
      const wrong = await check(m.name, setKey(`${arch}.block_count`, v.u64(BigInt(m.config.layers))));
      expect(problemsOf(wrong)).toEqual([["BAD_KEY", `${arch}.block_count`]]);
      expect(wrong.problems[0]!.message).toBe(`${arch}.block_count is a u64; llama.cpp reads it only as a u32`);
    });

    test("a tensor the architecture does not use is refused", async () => {
      const c = await check(m.name, addTensor({ name: `${last}attn_extra.weight`, type: GgmlType.F32, shape: [4], norm: false }));
      expect(problemsOf(c)).toEqual([["EXTRA_TENSOR", `${last}attn_extra.weight`]]);
      expect(c.problems[0]!.message).toContain("llama.cpp refuses a file with tensors it does not use");
    });

    test("heads that do not share key/value heads evenly are refused", async () => {
      const heads = m.config.heads;
      const c = await check(m.name, setKey(`${arch}.attention.head_count_kv`, v.u32(heads - 1)));
      expect(c.ok).toBe(false);
      expect(c.problems.some((p) => p.code === "BAD_CONFIG" && p.message.includes("not a multiple of"))).toBe(true);
    });
  });
}

describe("what each family adds", () => {
  test("Gemma 2's head is always its embedding: an output.weight is refused", async () => {
    const g = fixtureModel("tiny-gemma2-q4_k_m");
    const c = await check(g.name, addTensor({ name: "output.weight", type: GgmlType.Q8_0, shape: [g.config.hiddenSize, g.config.vocabSize], norm: false }));
    expect(problemsOf(c)).toEqual([["EXTRA_TENSOR", "output.weight"]]);
    expect(c.problems[0]!.message).toContain("a gemma2 model's head is always its embedding");
  });

  test("Qwen2-MoE and OLMo 2 have no tie fallback: output.weight is required", async () => {
    for (const name of ["tiny-qwen2moe-q4_k_m", "tiny-olmo2-q4_k_m"]) expect(problemsOf(await check(name, dropTensor("output.weight")))).toEqual([["TENSOR_MISSING", "output.weight"]]);
  });

  test("the MoE families need experts; an expert count without experts used is refused", async () => {
    for (const name of ["tiny-qwen2moe-q4_k_m", "tiny-qwen3moe-q4_k_m", "tiny-gpt-oss-q4_k_m"]) {
      const arch = fixtureModel(name).config.architecture;
      const none = await check(name, (p) => {
        dropKey(`${arch}.expert_count`)(p);
        dropKey(`${arch}.expert_used_count`)(p);
      });
      expect(none.problems.map((p) => p.message).join(" ")).toContain(`${arch}.expert_count is missing or 0`);
      const more = await check(name, dropKey(`${arch}.expert_count`));
      expect(more.problems.map((p) => p.message).join(" ")).toContain(`${arch}.expert_used_count 2 is more than ${arch}.expert_count 0`);
      const unused = await check(name, setKey(`${arch}.expert_used_count`, v.u32(0)));
      expect(unused.problems.map((p) => p.message).join(" ")).toContain("must route each token to at least one expert");
    }
  });

  test("DeepSeek: the metadata chooses attn_k_b/attn_v_b (MLA) or attn_kv_b, and q_lora_rank chooses attn_q_a/attn_q_b", async () => {
    // The split form without its *_mla keys reads as the legacy layout: attn_kv_b expected, k_b/v_b left over.
    const legacy = await check("tiny-deepseek2-q4_k_m", (p) => {
      dropKey("deepseek2.attention.key_length_mla")(p);
      dropKey("deepseek2.attention.value_length_mla")(p);
    });
    expect(legacy.problems.some((p) => p.code === "TENSOR_MISSING" && p.tensor === "blk.0.attn_kv_b.weight")).toBe(true);
    expect(legacy.problems.some((p) => p.code === "EXTRA_TENSOR" && p.message.includes("attn_k_b.weight"))).toBe(true);
    // Without q_lora_rank, a plain attn_q is expected.
    const noLora = await check("tiny-deepseek-v3-q4_k_m", dropKey("deepseek2.attention.q_lora_rank"));
    expect(noLora.problems.some((p) => p.code === "TENSOR_MISSING" && p.tensor === "blk.0.attn_q.weight")).toBe(true);
    expect(noLora.problems.some((p) => p.code === "EXTRA_TENSOR" && p.message.includes("attn_q_a"))).toBe(true);
    // The leading dense layer has a plain FFN; the others have experts and shared experts.
    const c = await check("tiny-deepseek2-q4_k_m");
    const names = c.expected.map((e) => e.name);
    expect(names).toContain("blk.0.ffn_gate.weight");
    expect(names).not.toContain("blk.0.ffn_gate_exps.weight");
    expect(names).toEqual(expect.arrayContaining(["blk.1.ffn_gate_exps.weight", "blk.1.ffn_gate_shexp.weight", "blk.1.exp_probs_b.bias"]));
  });

  test("Phi-3: fused q/k/v, or separate ones (as current llama.cpp reads them); a layer with neither is refused", async () => {
    const phi = fixtureModel("tiny-phi3-q4_k_m");
    const qkv = modelTensors(phi).find((t) => t.name === "blk.1.attn_qkv.weight")!;
    const separate = await check(phi.name, (p) => {
      dropTensor("blk.1.attn_qkv.weight")(p);
      const [embd, kv] = [phi.config.hiddenSize, phi.config.kvHeads * phi.config.headDim];
      for (const [n, rows] of [["attn_q", embd], ["attn_k", kv], ["attn_v", kv]] as const) p.tensors.push({ ...qkv, name: `blk.1.${n}.weight`, shape: [embd, rows] });
    });
    expect(separate.problems).toEqual([]);
    expect(problemsOf(await check(phi.name, dropTensor("blk.1.attn_qkv.weight")))).toEqual([["TENSOR_MISSING", "blk.1.attn_qkv.weight"]]);
  });

  test("the head size must be a whole number; head_count 0 (no attention) is refused", async () => {
    const zero = await check("tiny-qwen3-q4_k_m", setKey("qwen3.attention.head_count", v.u32(0)));
    expect(zero.problems.map((p) => p.message).join(" ")).toContain("qwen3.attention.head_count is 0");
    const uneven = await check("tiny-llama-q4_k_m", setKey("llama.attention.head_count", v.u32(3)));
    expect(uneven.ok).toBe(false);
  });

  test("a RoPE scaling type llama.cpp does not know is refused, not aborted on", async () => {
    const c = await check("tiny-gemma3-q4_k_m", setKey("gemma3.rope.scaling.type", v.str("dynamic")));
    expect(c.problems.map((p) => p.message)).toEqual(["gemma3.rope.scaling.type must be one of none, linear, yarn, longrope (llama.cpp aborts on anything else)"]);
  });

  test("per-layer arrays: one value per layer, and layer 0's sizes every tensor", async () => {
    const m = fixtureModel("tiny-qwen3-q4_k_m");
    const ffn = m.config.ffnSize;
    const ok = await check(m.name, setKey("qwen3.feed_forward_length", { type: "array", itemType: "u32", length: 3, items: new Uint32Array([ffn, ffn, ffn]) }));
    expect(ok.problems).toEqual([]);
    const short = await check(m.name, setKey("qwen3.feed_forward_length", { type: "array", itemType: "u32", length: 2, items: new Uint32Array([ffn, ffn]) }));
    expect(short.problems.map((p) => p.message)).toEqual(["qwen3.feed_forward_length has 2 values; block_count is 3, one value per layer"]);
  });
});
