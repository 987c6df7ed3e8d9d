// Real-size models of every family on the GPU, each written (they are
// deterministic), loaded into poisoned VRAM, verified byte for byte against
// the file, and removed again (they are 2.5 to 18.6 GB each, and the disk is
// finite); then a split set, loaded from one of its files, and a model of an
// architecture no registry knows, loaded with `unchecked`.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { liveResources } from "../src/cuda/index.ts";
import { fileBytes } from "../src/fixtures/corrupt.ts";
import { REAL_SIZE_FAMILY_FIXTURES } from "../src/fixtures/family-models.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { fixtureModel, modelMetadata, modelTensors } from "../src/fixtures/models.ts";
import { ensureSplitFixture } from "../src/fixtures/split.ts";
import { v } from "../src/fixtures/values.ts";
import { encodeHeader } from "../src/gguf/writer.ts";
import { Loader } from "../src/load/index.ts";
import { describeGpu } from "./support/gpu.ts";
import { tempDirs } from "./support/temp.ts";

const tempDir = tempDirs(); // removed after this file's tests

/** Kept after the test: the benchmark loads it too. */
const KEEP = new Set(["qwen2.5-7b-instruct-q4_k_m", "qwen1.5-moe-a2.7b-chat-q4_k_m"]);

describeGpu("real-size models of every family, byte-exact in VRAM", () => {
  let loader: Loader | null = null;
  const open = async () => (loader ??= await Loader.open());

  afterAll(async () => {
    await loader?.close();
    expect(liveResources().arenas).toBe(0);
  });

  for (const name of REAL_SIZE_FAMILY_FIXTURES) {
    test(name, async () => {
      const path = await ensureModelFixture(name);
      try {
        const { model, report } = await (await open()).load(path, { verify: true });
        try {
          expect(model.tensors.size).toBe(modelTensors(fixtureModel(name)).length + (report.plan.tiedHead ? 1 : 0));
          expect(report.timings.verify).toBeGreaterThan(0);
          console.log(`${name}: ${(report.plan.uploadBytes / 1e9).toFixed(2)} GB in ${report.timings.upload.toFixed(0)} ms (${(report.plan.uploadBytes / 1e6 / report.timings.upload).toFixed(1)} GB/s), verified in ${report.timings.verify.toFixed(0)} ms`);
        } finally {
          model.close();
        }
      } finally {
        if (!KEEP.has(name)) {
          rmSync(path, { force: true });
          rmSync(`${path}.stamp`, { force: true });
        }
      }
    }, 600_000);
  }

  test("a split set (Qwen2.5-7B in 4 files, the first metadata only), loaded from its third file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gguf-vram-split-gpu-"));
    try {
      const paths = await ensureSplitFixture("qwen2.5-7b-instruct-q4_k_m", { files: 4, emptyFirst: true, dir });
      const { model, report } = await (await open()).load(paths[2]!, { verify: true });
      try {
        expect(report.gguf.shards.map((s) => s.tensorCount)).toEqual([0, 113, 113, 113]);
        expect(model.source.files.map((f) => f.path)).toEqual(paths);
        expect(model.tensors.size).toBe(339);
        expect(new Set([...model.tensors.values()].map((t) => t.shard))).toEqual(new Set([1, 2, 3]));
      } finally {
        model.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);

  test("an architecture no registry knows, loaded unchecked: every tensor, byte-exact", async () => {
    const m = fixtureModel("tiny-llama-q4_k_m");
    const metadata = (await modelMetadata(m)).map((e) => (e.key === "general.architecture" ? { key: e.key, value: v.str("mamba9") } : e));
    const path = join(tempDir("gguf-vram-unchecked-gpu-"), "mamba9.gguf");
    writeFileSync(path, fileBytes(encodeHeader({ metadata, tensors: modelTensors(m) })));
    const { model, report } = await (await open()).load(path, { unchecked: true, verify: true });
    try {
      expect(report.check.ok).toBe(false);
      expect(model.tensors.size).toBe(modelTensors(m).length);
    } finally {
      model.close();
    }
  });
});
