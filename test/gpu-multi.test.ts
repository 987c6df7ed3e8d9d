// One model across several GPUs, and replicas, on real GPUs (skipped with fewer
// than two): every arena poisoned before its upload (support/gpu.ts), every
// load verified on every device against the file; llama.cpp's layer split; the
// tied head on a split; both replica routes; faults on one device, a cancel and
// an out-of-VRAM device, each leaving every device at its baseline.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { Arena, liveResources, memInfo } from "../src/cuda/index.ts";
import { faultsFired, Fault, injectFault, resetFaults } from "../src/cuda/testing.ts";
import type { Model } from "../src/load/index.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { Loader, LoadError, type LoadErrorCode, type LoadOptions, type LoadReport } from "../src/load/index.ts";
import { poolOf } from "../src/load/loader.ts";
import { fileRange } from "./support/file-range.ts";
import { describeGpus, gpu } from "./support/gpu.ts";

const NOTHING_LIVE = { arenas: 0, arenaBytes: 0, pinnedRanges: 0, pinnedBytes: 0, stagers: 0, copies: 0 };
const MiB = 1024 * 1024;
const free = (d: number) => memInfo(d).freeBytes;


/** A few tensors on every device read back and compared with the file, beside verify's checksums. */
function expectSpotReads(model: Model, path: string): void {
  for (const part of model.parts) {
    const tensors = [...part.tensors.values()].filter((t) => !t.aliasOf && t.bytes > 0);
    for (const t of [tensors[0]!, tensors[Math.floor(tensors.length / 2)]!, tensors.at(-1)!]) {
      const n = Math.min(t.bytes, 1 << 16);
      const inVram = part.arena.read(t.offset + t.bytes - n, n);
      expect([part.device, t.name, Buffer.compare(inVram, fileRange(path, t.fileOffset + t.bytes - n, n))]).toEqual([part.device, t.name, 0]);
    }
  }
}

describeGpus(2, "models across GPUs, byte-exact on every device", () => {
  const all = Array.from({ length: gpu.count }, (_, i) => i);
  const pair = [0, 1];
  let qwen = "";
  let tied = "";
  let big = "";
  let loader: Loader;
  let baseline: number[] = [];
  let held: ReturnType<typeof liveResources>; // the loader's rings: nothing more may stay

  const expectBaseline = () => {
    expect(all.map(free)).toEqual(baseline);
    expect(liveResources()).toEqual(held);
  };

  const loadVerified = async (path: string, options: LoadOptions): Promise<{ model: Model; report: LoadReport }> => {
    const r = await loader.load(path, { ...options, verify: true });
    expect(r.report.timings.verify).toBeGreaterThan(0);
    return r;
  };

  beforeAll(async () => {
    qwen = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m");
    tied = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m-tied");
    big = await ensureModelFixture("qwen2.5-7b-instruct-q4_k_m");
    loader = await Loader.open({ devices: all });
    // Contexts, peer access and the checksum kernel warm on every device, so the baseline includes them.
    (await loader.load(qwen, { replicas: all, verify: true })).model.close();
    (await loader.load(qwen, { replicas: all, replicaRoute: "host", verify: true })).model.close();
    baseline = all.map(free);
    held = liveResources();
    expect(held).toMatchObject({ arenas: 0, arenaBytes: 0, copies: 0, stagers: loader.devices.length * poolOf(loader).workers });
  }, 600_000);

  afterAll(async () => {
    await loader?.close();
    expect(liveResources()).toEqual(NOTHING_LIVE);
  });

  test("split 3:1 on two GPUs: llama.cpp's layers, token_embd first, output last, every tensor byte-exact", async () => {
    const { model, report } = await loadVerified(qwen, { devices: pair, split: [3, 1] });
    try {
      expect(model.kind).toBe("split");
      expect(model.devices.map((d) => [d.device, d.layers])).toEqual([[0, [0, 18]], [1, [19, 23]]]);
      expect(model.tensor("token_embd.weight").device).toBe(0);
      expect([model.tensor("output.weight").device, model.tensor("output_norm.weight").device, model.tensor("blk.19.attn_q.weight").device]).toEqual([1, 1, 1]);
      expect(model.tensors.size).toBe(291);
      expect(model.devices.reduce((n, d) => n + d.tensors, 0)).toBe(291);
      expect(model.ledger.dataBytes).toBe(485_452_288);
      // Each device's free memory fell by its arena (cudaMalloc rounds to 2 MiB pages).
      for (const v of report.vram) {
        const arena = model.devices.find((d) => d.device === v.device)!.bytes;
        expect(v.freeBefore - v.freeAfter).toBeGreaterThanOrEqual(arena);
        expect(v.freeBefore - v.freeAfter).toBeLessThan(arena + 64 * MiB);
      }
      expectSpotReads(model, qwen);
    } finally {
      model.close();
    }
    expectBaseline();
  });

  test("the layer assignment for 1:1 and 1:3 is llama.cpp's (24 layers: il / 25 against 0.5, and 0.25)", async () => {
    const cases: [number[], [number, number][]][] = [[[1, 1], [[0, 12], [13, 23]]], [[1, 3], [[0, 6], [7, 23]]]];
    for (const [split, layers] of cases) {
      const { model } = await loadVerified(qwen, { devices: pair, split });
      try {
        expect({ split, layers: model.devices.map((d) => d.layers) }).toEqual({ split, layers });
      } finally {
        model.close();
      }
    }
    expectBaseline();
  });

  test("the 7B split evenly across every GPU: contiguous blocks, byte-exact", async () => {
    const { model, report } = await loadVerified(big, { devices: all, split: all.map(() => 1) });
    try {
      const blocks = model.devices.map((d) => d.layers!);
      expect(blocks[0]![0]).toBe(0);
      expect(blocks.at(-1)![1]).toBe(27);
      for (let i = 1; i < blocks.length; i++) expect(blocks[i]![0]).toBe(blocks[i - 1]![1] + 1);
      if (gpu.count === 4) expect(blocks).toEqual([[0, 7], [8, 14], [15, 21], [22, 27]]);
      console.log(`7B split over ${gpu.count} GPUs: ${(report.plan.uploadBytes / 1e9).toFixed(2)} GB in ${report.timings.upload.toFixed(0)} ms (${(report.plan.uploadBytes / 1e6 / report.timings.upload).toFixed(1)} GB/s), verified in ${report.timings.verify.toFixed(0)} ms`);
      expectSpotReads(model, big);
    } finally {
      model.close();
    }
    expectBaseline();
  });

  test("with no proportions, the split follows free VRAM: every device gets layers", async () => {
    const { model } = await loadVerified(qwen, { devices: pair });
    try {
      expect(model.devices.every((d) => d.layers !== null)).toBe(true);
      expect(model.devices[0]!.layers![0]).toBe(0);
      expect(model.devices[1]!.layers![1]).toBe(23);
    } finally {
      model.close();
    }
    expectBaseline();
  });

  test("the tied head on a split: a copy of token_embd on the output's GPU, byte-exact; on one GPU, an alias", async () => {
    const { model } = await loadVerified(tied, { devices: pair, split: [1, 1] });
    try {
      const head = model.tensor("output.weight");
      const embd = model.tensor("token_embd.weight");
      expect([head.device, embd.device, head.copyOf, head.aliasOf]).toEqual([1, 0, "token_embd.weight", undefined]);
      expect(Buffer.compare(model.read("output.weight"), model.read("token_embd.weight"))).toBe(0);
    } finally {
      model.close();
    }
    const { model: lopsided } = await loadVerified(tied, { devices: pair, split: [1, 0] });
    try {
      expect(lopsided.tensor("output.weight")).toMatchObject({ device: 0, aliasOf: "token_embd.weight" });
      expect(lopsided.devices[1]).toMatchObject({ layers: null, tensors: 0 });
    } finally {
      lopsided.close();
    }
    expectBaseline();
  });

  for (const route of ["peer", "host"] as const) {
    test(`replicas on every GPU by the ${route} route: a whole copy on each, byte-exact`, async () => {
      const { model, report } = await loadVerified(big, { replicas: all, replicaRoute: route });
      try {
        expect([model.kind, report.route]).toEqual(["replicas", route]);
        expect(model.devices.map((d) => d.tensors)).toEqual(all.map(() => 339));
        for (const d of all) expect(model.tensor("blk.27.ffn_down.weight", d).device).toBe(d);
        if (route === "peer") expect(report.timings.peer).toBeGreaterThan(0);
        console.log(`7B on ${gpu.count} replicas by the ${route} route: ${report.timings.upload.toFixed(0)} ms upload + ${report.timings.peer.toFixed(0)} ms exchange`);
        expectSpotReads(model, big);
      } finally {
        model.close();
      }
      expectBaseline();
    }, 600_000);
  }

  /** Arms a fault for device 1, loads, and checks it fired and that every device is back at its baseline. */
  async function faultOnDevice1(kind: Fault, k: number, options: LoadOptions, code: LoadErrorCode): Promise<void> {
    resetFaults();
    injectFault(kind, k, 1);
    const e = await loader.load(big, options).then(
      ({ model }) => {
        model.close();
        return null;
      },
      (x: unknown) => x,
    );
    const fired = faultsFired(kind);
    resetFaults();
    expect([kind, k, fired]).toEqual([kind, k, 1]);
    expect(e).toBeInstanceOf(LoadError);
    expect([kind, (e as LoadError).code]).toEqual([kind, code]);
    expect((e as LoadError).message).toContain("injected fault");
    expectBaseline();
  }

  test("a fault on device 1 — its allocation, a copy mid-upload, an event, a peer copy — leaves every device at its baseline", async () => {
    await faultOnDevice1(Fault.DeviceAlloc, 1, { devices: all, split: all.map(() => 1) }, "OUT_OF_VRAM");
    await faultOnDevice1(Fault.Copy, 300, { devices: all, split: all.map(() => 1) }, "UPLOAD_FAILED");
    await faultOnDevice1(Fault.Event, 200, { devices: all, split: all.map(() => 1) }, "UPLOAD_FAILED");
    await faultOnDevice1(Fault.Copy, 150, { replicas: all, replicaRoute: "host" }, "UPLOAD_FAILED");
    await faultOnDevice1(Fault.PeerCopy, 1, { replicas: all, replicaRoute: "peer" }, "UPLOAD_FAILED");
    // And the next loads are whole.
    (await loadVerified(big, { replicas: all })).model.close();
    expectBaseline();
  }, 600_000);

  test("a split cancelled mid-upload gives every device back", async () => {
    const ac = new AbortController();
    // 5 ms into the upload (which takes tens of ms at any speed these hosts reach).
    const onPhase = (phase: string) => phase === "upload" && setTimeout(() => ac.abort(), 5);
    const loading = loader.load(big, { devices: all, split: all.map(() => 1), signal: ac.signal, onPhase });
    await expect(loading).rejects.toMatchObject({ code: "CANCELLED" });
    expectBaseline();
  });

  test("two splits and a set of replicas at once on one Loader: three correct models", async () => {
    const results = await Promise.all([loader.load(qwen, { devices: pair, split: [1, 2] }), loader.load(tied, { devices: all, split: all.map(() => 1) }), loader.load(qwen, { replicas: all })]);
    try {
      for (const { model } of results) expect((await loader.verify(model)).tensors).toBeGreaterThan(0);
    } finally {
      for (const { model } of results) model.close();
    }
    expectBaseline();
  }, 600_000);

  test("a load asking for a device the Loader has no workers for is refused before anything is allocated", async () => {
    const e = await loader.load(qwen, { devices: [0, gpu.count] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LoadError);
    expect((e as LoadError).code).toBe("BAD_DEVICE");
    expect((e as LoadError).message).toContain(`device ${gpu.count} is not one of this loader's devices`);
    expectBaseline();
  });

  test("a device without room is named, with what its part needs and what it has; nothing is left on the others", async () => {
    const blocker = Arena.create(1, free(1) - 512 * MiB);
    try {
      const e = await loader.load(big, { devices: pair, split: [1, 1] }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(LoadError);
      expect((e as LoadError).code).toBe("OUT_OF_VRAM");
      expect((e as LoadError).message).toMatch(/its part on device 1 \(layers 15–27\) needs [\d.]+ MiB of VRAM; device 1 has [\d.]+ MiB free/);
      expect(free(0)).toBe(baseline[0]!);
    } finally {
      blocker.close();
    }
    expectBaseline();
  });
});
