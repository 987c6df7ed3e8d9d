// Real-size models of each supported family on the GPU: written (they are
// deterministic), loaded into poisoned VRAM, verified byte for byte against the
// file, and removed again (they are several GB each, and the disk is finite).

import { afterAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { liveResources } from "../src/cuda/index.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { fixtureModel, modelTensors } from "../src/fixtures/models.ts";
import { Loader } from "../src/load/index.ts";
import { describeGpu } from "./support/gpu.ts";

/** The real-size fixture of each family, and the model it was sized after. */
const REAL_SIZE = ["qwen3-8b-q4_k_m"] as const;

describeGpu("real-size models of every family, byte-exact in VRAM", () => {
  let loader: Loader | null = null;

  afterAll(async () => {
    await loader?.close();
    expect(liveResources().arenas).toBe(0);
  });

  for (const name of REAL_SIZE) {
    test(name, async () => {
      loader ??= await Loader.open();
      const path = await ensureModelFixture(name);
      try {
        const { model, report } = await loader.load(path, { verify: true });
        try {
          expect(model.tensors.size).toBe(modelTensors(fixtureModel(name)).length + (report.plan.tiedHead ? 1 : 0));
          expect(report.timings.verify).toBeGreaterThan(0);
          console.log(`${name}: ${(report.plan.uploadBytes / 1e9).toFixed(2)} GB in ${report.timings.upload.toFixed(0)} ms (${(report.plan.uploadBytes / 1e6 / report.timings.upload).toFixed(1)} GB/s), verified in ${report.timings.verify.toFixed(0)} ms`);
        } finally {
          model.close();
        }
      } finally {
        rmSync(path, { force: true });
        rmSync(`${path}.stamp`, { force: true });
      }
    }, 600_000);
  }
});
