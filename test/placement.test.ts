// Models on several GPUs, planned without one: llama.cpp's layer split (the
// expected assignments are worked out by hand from its rule in
// src/llama-model.cpp, not computed by the code under test), what goes with the
// first and the last device, tied heads and RoPE factors across devices,
// replicas, and the shares replicas exchange.

import { describe, expect, test } from "bun:test";
import { checkModel } from "../src/arch/index.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { readGguf } from "../src/gguf/index.ts";
import { layerAssignment, load, LoadError, planLoad, uploadSpans, type LoadOptions, type Placement } from "../src/load/index.ts";
import { shareRange, shareSpans } from "../src/load/replicas.ts";
import { newUploadJob, uploadInvariantBroken } from "../src/load/spans.ts";
import { expectExactCoverage } from "./support/coverage.ts";

async function planOf(name: string, placement: Placement) {
  const g = await readGguf(await ensureModelFixture(name, { sparse: true }));
  return { g, plan: planLoad(g, checkModel(g), placement) };
}

/** [first, last] of the entries equal to d, or null. */
const range = (a: readonly number[], d: number) => {
  const i = a.indexOf(d);
  return i < 0 ? null : [i, a.lastIndexOf(d)];
};

describe("llama.cpp's layer split", () => {
  // Layer il goes to the first device whose cumulative fraction is above il / (n_layer + 1);
  // the output counts as layer n_layer.
  test("24 layers, 3:1 — fractions 0.75, 1: layers below 18.75 on the first", () => {
    const a = layerAssignment(24, [3, 1]);
    expect(range(a.slice(0, 24), 0)).toEqual([0, 18]);
    expect(range(a.slice(0, 24), 1)).toEqual([19, 23]);
    expect(a[24]).toBe(1); // 24/25 = 0.96 < 1
  });

  test("32 layers, even — the first takes 17 (il < 16.5), the second 15 and the output", () => {
    const a = layerAssignment(32, [1, 1]);
    expect(a.filter((d) => d === 0).length).toBe(17);
    expect(range(a.slice(0, 32), 1)).toEqual([17, 31]);
    expect(a[32]).toBe(1);
  });

  test("28 layers on 4 devices — 8, 7, 7 and 6 layers (il < 7.25, 14.5, 21.75)", () => {
    const a = layerAssignment(28, [1, 1, 1, 1]);
    expect([0, 1, 2, 3].map((d) => range(a.slice(0, 28), d))).toEqual([[0, 7], [8, 14], [15, 21], [22, 27]]);
  });

  test("a device with proportion 0 gets nothing", () => {
    const a = layerAssignment(10, [1, 0, 1]);
    expect(a).not.toContain(1);
    expect(range(a, 0)).toEqual([0, 5]); // il/11 < 0.5
  });

  test("in float32, as llama.cpp computes it: 0.1f + 0.2f is 0.3f, so layer 3 of 9 at 0.1, 0.2, 0.7 goes to the third device", () => {
    // In doubles 0.1 + 0.2 = 0.30000000000000004 > 0.3 would send it to the second.
    expect(layerAssignment(9, [0.1, 0.2, 0.7])[3]).toBe(2);
  });
});

describe("a split plan", () => {
  test("Qwen2.5-0.5B 3:1 on devices 4 and 6: token_embd with layer 0, output_norm and output with layer 23", async () => {
    const { plan, g } = await planOf("qwen2.5-0.5b-instruct-q4_k_m", { kind: "split", devices: [4, 6], split: [3, 1] });
    const [a, b] = plan.devices;
    expect([a!.device, a!.layers, b!.device, b!.layers]).toEqual([4, [0, 18], 6, [19, 23]]);
    const on = (d: typeof a) => new Set(d!.tensors.map((t) => t.name));
    expect(on(a).has("token_embd.weight")).toBe(true);
    expect([on(b).has("output.weight"), on(b).has("output_norm.weight"), on(b).has("blk.19.attn_q.weight"), on(a).has("blk.18.ffn_down.weight")]).toEqual([true, true, true, true]);
    // Every tensor once, nowhere twice; the arenas and ledgers add up.
    expect(a!.tensors.length + b!.tensors.length).toBe(g.tensors.length);
    expect(new Set([...on(a), ...on(b)]).size).toBe(291);
    expect(plan.arenaBytes).toBe(a!.arenaBytes + b!.arenaBytes);
    expect(plan.ledger.dataBytes).toBe(485_452_288);
    expect(plan.ledger.totalBytes).toBe(plan.arenaBytes);
    for (const d of plan.devices) {
      expect(d.ledger.totalBytes).toBe(d.arenaBytes);
      expect(d.tensors.every((t) => t.device === d.device)).toBe(true);
      expectExactCoverage(d, 2 << 20);
    }
  });

  test("a tied head on another device than token_embd is a copy of its bytes there; on the same device, an alias", async () => {
    const tied = "qwen2.5-0.5b-instruct-q4_k_m-tied";
    const { plan } = await planOf(tied, { kind: "split", devices: [0, 1], split: [1, 1] });
    const embd = plan.devices[0]!.tensors.find((t) => t.name === "token_embd.weight")!;
    const head = plan.devices[1]!.tensors.find((t) => t.name === "output.weight")!;
    expect(head).toMatchObject({ copyOf: "token_embd.weight", bytes: embd.bytes, fileOffset: embd.fileOffset, device: 1 });
    expect(head.aliasOf).toBeUndefined();
    expect(plan.ledger.dataBytes).toBe(391_859_712 + embd.bytes); // the embedding twice
    expectExactCoverage(plan.devices[1]!, 2 << 20); // the copy's bytes are read like any tensor's

    const lopsided = (await planOf(tied, { kind: "split", devices: [0, 1], split: [1, 0] })).plan;
    const alias = lopsided.devices[0]!.tensors.find((t) => t.name === "output.weight")!;
    expect(alias.aliasOf).toBe("token_embd.weight");
    expect(lopsided.devices[1]!.tensors).toEqual([]);
    expect(lopsided.devices[1]!.layers).toBeNull();
    expect(lopsided.ledger.dataBytes).toBe(391_859_712);
  });

  test("RoPE factors every layer reads get a copy on each device that holds layers (Phi-3, tied)", async () => {
    const { plan } = await planOf("tiny-phi3-q4_k_m", { kind: "split", devices: [0, 1], split: [1, 1] });
    for (const d of plan.devices) {
      const names = d.tensors.map((t) => t.name);
      expect([d.device, names.includes("rope_factors_long.weight"), names.includes("rope_factors_short.weight")]).toEqual([d.device, true, true]);
    }
    expect(plan.devices.map((d) => d.layers)).toEqual([[0, 1], [2, 2]]); // il/4 < 0.5 for il = 0, 1
    expect(plan.devices[1]!.tensors.find((t) => t.name === "output.weight")?.copyOf).toBe("token_embd.weight");
  });
});

test("a device that holds nothing has an empty job, and the upload invariant holds for it", () => {
  const job = newUploadJob([], [], 12, "tapered");
  expect(job.spanCount).toBe(0);
  expect(uploadInvariantBroken(job, 0)).toBeNull();
  expect(uploadInvariantBroken(job, 1)).toContain("the plan reads 0");
});

describe("replicas", () => {
  test("every device holds the whole model, laid out identically", async () => {
    const { plan } = await planOf("qwen2.5-0.5b-instruct-q4_k_m", { kind: "replicas", devices: [0, 1, 2] });
    const [a, ...rest] = plan.devices;
    for (const d of rest) {
      expect(d.tensors.map((t) => [t.name, t.offset])).toEqual(a!.tensors.map((t) => [t.name, t.offset]));
      expect(d.arenaBytes).toBe(a!.arenaBytes);
    }
    expect(a!.layers).toEqual([0, 23]);
    expect(plan.uploadBytes).toBe(3 * 485_452_288);
  });

  for (const n of [2, 3, 4, 7]) {
    test(`${n} shares: the spans in order, each once, in balanced contiguous runs whose arena ranges tile the arena`, async () => {
      const { plan } = await planOf("qwen2.5-0.5b-instruct-q4_k_m", { kind: "replicas", devices: [0, 1] });
      const spans = uploadSpans(plan.devices[0]!, 2 << 20);
      const shares = shareSpans(spans, n);
      expect(shares.flat()).toEqual(spans);
      const bytes = shares.map((s) => s.reduce((b, x) => b + x.bytes, 0));
      const ideal = plan.devices[0]!.uploadBytes / n;
      for (const b of bytes) expect(Math.abs(b - ideal)).toBeLessThanOrEqual(2 << 20); // within one span
      const ranges = shares.map(shareRange);
      for (let i = 1; i < n; i++) expect(ranges[i]!.offset).toBeGreaterThanOrEqual(ranges[i - 1]!.offset + ranges[i - 1]!.bytes);
      // Copying each share's range to the other replicas copies every tensor byte.
      const covered = ranges.reduce((s, r) => s + r.bytes, 0);
      expect(covered).toBeGreaterThanOrEqual(plan.devices[0]!.uploadBytes);
      expect(ranges[0]!.offset).toBe(0);
      const last = plan.devices[0]!.tensors.filter((t) => !t.aliasOf).at(-1)!;
      expect(ranges.at(-1)!.offset + ranges.at(-1)!.bytes).toBe(last.offset + last.bytes);
    });
  }
});

describe("placement options the library refuses before touching a GPU", () => {
  const cases: [string, LoadOptions, RegExp][] = [
    ["device with devices", { device: 0, devices: [0, 1] }, /give one of them/],
    ["devices with replicas", { devices: [0, 1], replicas: [0, 1] }, /give one of them/],
    ["split without devices", { split: [3, 1] }, /split needs devices/],
    ["a device twice", { devices: [0, 0] }, /names device 0 twice/],
    ["no devices", { replicas: [] }, /replicas is empty/],
    ["a negative index", { devices: [0, -1] }, /-1 is not a device index/],
    ["one proportion for two devices", { devices: [0, 1], split: [1] }, /split has 1 proportion for 2 devices/],
    ["proportions all zero", { devices: [0, 1], split: [0, 0] }, /not a set of proportions/],
    ["a proportion below zero", { devices: [0, 1], split: [1, -1] }, /not a set of proportions/],
  ];
  for (const [what, options, message] of cases) {
    test(`${what}: BAD_DEVICE (exit code 2), one sentence and a hint`, async () => {
      const path = await ensureModelFixture("tiny-qwen2-q4_k_m");
      const e = await load(path, options).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(LoadError);
      expect([(e as LoadError).code, (e as LoadError).exitCode]).toEqual(["BAD_DEVICE", 2]);
      expect((e as LoadError).message).toMatch(message);
      expect((e as LoadError).hint.length).toBeGreaterThan(0);
    });
  }
});
