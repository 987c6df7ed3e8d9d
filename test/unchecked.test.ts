// An architecture outside the registry is refused with the list of known ones
// and the way to load it anyway; with --unchecked (the `unchecked` option)
// only the GGUF format is checked, every tensor is planned as the file has it,
// nothing is tied, and the plan and summary say so. Experts' 3-D tensors go
// through plan, ledger and JSON like any other.

import { beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { fixtureModel, modelMetadata, modelTensors } from "../src/fixtures/models.ts";
import { fileBytes } from "../src/fixtures/corrupt.ts";
import { v } from "../src/fixtures/values.ts";
import { encodeHeader } from "../src/gguf/writer.ts";
import { LoadError, ModelFile, planLoad } from "../src/load/index.ts";
import { tempDirs } from "./support/temp.ts";

const tempDir = tempDirs(); // removed after this file's tests

const ROOT = new URL("..", import.meta.url).pathname;
let unknown = "";

beforeAll(async () => {
  // The tiny llama under an architecture no registry knows, and with a tensor llama lacks.
  const m = fixtureModel("tiny-llama-q4_k_m");
  const metadata = (await modelMetadata(m)).map((e) => (e.key === "general.architecture" ? { key: e.key, value: v.str("mamba9") } : e));
  const tensors = [...modelTensors(m), { name: "blk.0.ssm_conv1d.weight", type: 0, shape: [4, 64], norm: false }];
  unknown = join(tempDir("gguf-vram-unchecked-"), "mamba9.gguf");
  writeFileSync(unknown, fileBytes(encodeHeader({ metadata, tensors })));
});

const load = (...args: string[]) => {
  const p = Bun.spawnSync([process.execPath, "src/cli/load.ts", ...args], { cwd: ROOT, env: { ...process.env, CUDA_VISIBLE_DEVICES: "", NO_COLOR: "1" } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

test("an unknown architecture is refused, naming the known ones and --unchecked", async () => {
  const e = (await ModelFile.open(unknown).catch((x: unknown) => x)) as LoadError;
  expect(e.code).toBe("UNSUPPORTED_ARCHITECTURE");
  expect(e.message).toContain("architecture 'mamba9' is not in the registry (known: llama, qwen2, qwen3, qwen2moe, qwen3moe, gemma2, gemma3, phi3, deepseek2, gpt-oss, granite, granitemoe, olmo2)");
  expect(e.message).toContain("--unchecked loads it anyway");
  const r = load("--dry-run", "--model", unknown);
  expect(r.code).toBe(1);
  expect(r.err.split("\n").filter(Boolean)).toHaveLength(1);
});

test("--unchecked plans every tensor as the file has it, and says the layout was not checked", async () => {
  const f = await ModelFile.open(unknown, { unchecked: true });
  try {
    expect(f.unchecked).toBe(true);
    const plan = planLoad(f.gguf, f.check);
    expect(plan.tiedHead).toBe(false);
    expect(plan.tensors.map((t) => t.name).sort()).toEqual(f.gguf.tensors.map((t) => t.name).sort());
    expect(plan.uploadBytes).toBe(f.gguf.tensorDataBytes);
  } finally {
    f.close();
  }
  const text = load("--dry-run", "--unchecked", "--model", unknown);
  expect(text.code).toBe(0);
  expect(text.out).toContain("layout not checked (--unchecked): architecture 'mamba9' is not in the registry");
  expect(text.out).toContain("every tensor is loaded as the file has it");
  const json = JSON.parse(load("--dry-run", "--json", "--unchecked", "--model", unknown).out) as { model: { checked: boolean; problems: string[]; tensors: number } };
  expect(json.model.checked).toBe(false);
  expect(json.model.problems[0]).toContain("mamba9");
  expect(json.model.tensors).toBe(modelTensors(fixtureModel("tiny-llama-q4_k_m")).length + 1);
});

test("a known architecture's valid model is the same with or without --unchecked", async () => {
  const path = await ensureModelFixture("tiny-qwen3-q4_k_m");
  const doc = JSON.parse(load("--dry-run", "--json", "--unchecked", "--model", path).out) as { model: { checked: boolean; problems: string[] } };
  expect(doc.model).toMatchObject({ checked: true, problems: [] });
});

test("experts are 3-D tensors in the plan, the ledger and the JSON", async () => {
  const path = await ensureModelFixture("tiny-mixtral-q4_k_m");
  const doc = JSON.parse(load("--dry-run", "--json", "--model", path).out) as { plan: { tensors: { name: string; shape: number[]; bytes: number }[]; dataBytes: number } };
  const experts = doc.plan.tensors.filter((t) => t.name.endsWith("_exps.weight"));
  expect(experts.length).toBe(9);
  for (const t of experts) expect([t.name, t.shape.length]).toEqual([t.name, 3]);
  expect(doc.plan.tensors.find((t) => t.name === "blk.0.ffn_down_exps.weight")!.shape).toEqual([128, 64, 8]);
  expect(doc.plan.dataBytes).toBe(doc.plan.tensors.reduce((n, t) => n + t.bytes, 0));
});
