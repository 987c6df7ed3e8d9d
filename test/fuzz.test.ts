// The fuzzer, as CI runs it: the fixed seed, 20,000 mutated files and 500
// edited models, no crash, no hang, no huge allocation, no wrong verdict. Then
// the pieces it stands on: its corpus maps the right bytes, cases replay, and
// its oracle tells a crash from a GgufError.

import { describe, expect, test } from "bun:test";
import { DEFAULT_OPTIONS, FuzzEngine, buildCorpus, fromHex, hexDump, judge, judgeBlob, Prng, runFuzz } from "../src/fuzz/index.ts";
import { editModel, modelCorpus } from "../src/fuzz/model-fuzz.ts";
import { expectation, judgeModel } from "../src/fuzz/model-oracle.ts";
import { MUTATORS, mutate, type FuzzInput } from "../src/fuzz/mutate.ts";
import { GGUF_ERROR_CODES, GgufError, readGguf } from "../src/gguf/index.ts";
import { inputBlob } from "../src/fuzz/oracle.ts";

describe("the fixed-seed run", () => {
  test(
    "20,000 mutated files and 500 edited models: each parses or raises a GgufError, in time and in bounded memory",
    async () => {
      const s = await runFuzz({ ...DEFAULT_OPTIONS, rssGrowthLimitBytes: 512 << 20 });
      expect(s.findings).toEqual([]);
      expect(s.tally.formatCases).toBe(20_000);
      expect(s.tally.modelCases).toBe(500);
      expect(s.workerRestarts).toBe(0);
      // Not a pass by doing nothing: inputs parse, every error a header can raise is raised, models go both ways.
      expect(s.tally.parsed).toBeGreaterThan(500);
      // (a split set's codes are about several files, not one header)
      const headerCodes = GGUF_ERROR_CODES.filter((c) => !["FILE_NOT_FOUND", "IS_A_DIRECTORY", "NOT_READABLE", "SPLIT_MISSING_SHARD", "BAD_SPLIT"].includes(c));
      expect(Object.keys(s.tally.rejected).sort()).toEqual([...headerCodes].sort());
      expect(s.tally.model.ok).toBeGreaterThan(50);
      expect(s.tally.model["not-ok"]).toBeGreaterThan(100);
    },
    120_000,
  );
});

describe("the corpus", () => {
  test("every seed file parses, and its field map points at the values the reader found", async () => {
    for (const seed of await buildCorpus()) {
      const g = await readGguf(inputBlob({ head: seed.head, dataBytes: seed.dataBytes }));
      const view = new DataView(seed.head.buffer, seed.head.byteOffset);
      const at = (kind: Parameters<typeof seed.fields.get>[0]) => seed.fields.get(kind) ?? [];
      const size = (pos: number) => (seed.sizeWidth === 8 ? Number(view.getBigUint64(pos, true)) : view.getUint32(pos, true));
      expect([seed.name, size(at("tensorCount")[0]!.at), size(at("keyCount")[0]!.at)]).toEqual([seed.name, g.tensors.length, g.metadata.size]);
      expect(at("keyLength").map((f) => size(f.at))).toEqual([...g.metadata.keys()].map((k) => new TextEncoder().encode(k).length));
      expect(at("ggmlType").map((f) => view.getUint32(f.at, true))).toEqual(g.tensors.map((t) => t.type));
      expect(at("offset").map((f) => Number(view.getBigUint64(f.at, true)))).toEqual(g.tensors.map((t) => t.relativeOffset));
      expect(at("nDims").map((f) => view.getUint32(f.at, true))).toEqual(g.tensors.map((t) => t.shape.length));
      expect(at("dim").map((f) => size(f.at))).toEqual(g.tensors.flatMap((t) => t.shape));
      expect(seed.head.length + seed.dataBytes).toBeLessThan(1 << 20);
    }
  });

  test("the seed files cover v1, v2 and v3, every value type, arrays of arrays and an explicit alignment", async () => {
    const corpus = await buildCorpus();
    expect(new Set(corpus.map((s) => s.version))).toEqual(new Set([1, 2, 3]));
    const itemTypes = corpus.flatMap((s) => (s.fields.get("itemType") ?? []).map((f) => new DataView(s.head.buffer, s.head.byteOffset).getUint32(f.at, true)));
    expect(itemTypes).toContain(9); // an array whose items are arrays
    expect(corpus.map((s) => s.name)).toEqual(expect.arrayContaining(["base", "all-types", "tiny-qwen2-q4_k_m", "tiny-llama-mixed"]));
    const kinds = new Set(corpus.flatMap((s) => [...s.fields.keys()]));
    expect(kinds.size).toBe(15);
  });
});

describe("the width mutator", () => {
  test("adds up to a megabyte of array items or renamed records; every such header is read or refused", async () => {
    const corpus = await buildCorpus();
    const rng = new Prng(0x71d7);
    const grown: number[] = [];
    const outcomes = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const seed = corpus[i % corpus.length]!;
      const input: FuzzInput = { head: seed.head.slice(), dataBytes: seed.dataBytes };
      const step = MUTATORS.widen!.apply({ rng, seed, input });
      if (step === null) continue;
      grown.push(input.head.length - seed.head.length);
      const v = await judge(input);
      expect([step, v.kind]).not.toEqual([step, "crash"]);
      outcomes.add(v.kind === "rejected" ? v.code : v.kind);
    }
    expect(grown.length).toBeGreaterThan(40);
    expect(Math.max(...grown)).toBeGreaterThan(500_000);
    expect(Math.max(...grown)).toBeLessThanOrEqual((1 << 20) + 64);
    // Widened files are read, and some are refused for their width.
    expect(outcomes.has("parsed")).toBe(true);
  });
});

describe("cases replay", () => {
  test("the same seed and case number give the same input", async () => {
    const [a, b] = await Promise.all([FuzzEngine.create(DEFAULT_OPTIONS), FuzzEngine.create(DEFAULT_OPTIONS)]);
    for (const j of [0, 1, 777, 19_999]) {
      const x = a.formatCase(j);
      const y = b.formatCase(j);
      expect(y.steps).toEqual(x.steps);
      expect(y.initialWindow).toBe(x.initialWindow);
      expect(Buffer.compare(y.input.head, x.input.head)).toBe(0);
      expect(y.input.dataBytes).toBe(x.input.dataBytes);
    }
  });

  test("a reproducer's hex reads back as the same input", async () => {
    const engine = await FuzzEngine.create(DEFAULT_OPTIONS);
    for (const j of [3, 4, 5]) {
      const { input } = engine.formatCase(j);
      const back = fromHex(hexDump(input));
      expect(Buffer.compare(back.head, input.head)).toBe(0);
      expect(back.dataBytes).toBe(input.dataBytes);
    }
  });

  test("mutation changes a copy, never the seed file", async () => {
    const corpus = await buildCorpus();
    const before = corpus.map((s) => s.head.slice());
    for (let i = 0; i < 500; i++) mutate(Prng.forCase(1, i), corpus[i % corpus.length]!);
    corpus.forEach((s, i) => expect(Buffer.compare(s.head, before[i]!)).toBe(0));
  });
});

describe("the oracle", () => {
  test("a GgufError is a rejection with its code, a valid file parses", async () => {
    const [base] = await buildCorpus();
    expect((await judge({ head: base!.head.subarray(0, 10), dataBytes: 0 })).kind).toBe("rejected");
    const ok = await judge({ head: base!.head, dataBytes: base!.dataBytes }, 7);
    expect(ok.kind).toBe("parsed");
  });

  test("anything else thrown is a crash, with its stack", async () => {
    const broken = new (class extends Blob {
      override get size(): number {
        throw new TypeError("size is broken");
      }
    })([]);
    const v = await judgeBlob(broken);
    expect(v).toMatchObject({ kind: "crash", stage: "readGguf", error: "TypeError: size is broken" });
    expect(v.kind === "crash" && v.stack.includes("readGguf")).toBe(true);
    await expect(readGguf(broken)).rejects.not.toBeInstanceOf(GgufError);
  });
});

describe("model-level expectations", () => {
  test("an unedited model must pass and does; without block_count it must fail and does", async () => {
    const seeds = await modelCorpus();
    for (const seed of seeds) {
      const state = { seed, metadata: [...seed.metadata], tensors: [...seed.tensors], touchedKeys: new Set<string>(), extras: 0 };
      expect(expectation(state)).toEqual({ kind: "must-pass" });
      state.metadata = state.metadata.filter((e) => e.key !== `${seed.arch}.block_count`);
      state.touchedKeys.add(`${seed.arch}.block_count`);
      expect(expectation(state).kind).toBe("must-fail");
    }
  });

  test("edited models get the verdict their edits demand", async () => {
    const seeds = await modelCorpus();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const c = editModel(Prng.forCase(7, i), seeds);
      seen.add(c.expectation.kind);
      const v = await judgeModel(c);
      expect([c.edits, v.kind]).not.toEqual([c.edits, "crash"]);
      expect([c.edits, v.kind]).not.toEqual([c.edits, "wrong-verdict"]);
    }
    expect(seen).toEqual(new Set(["must-fail", "must-pass", "free"]));
  });
});
