// The load plan, without a GPU: arena layout, the ledger, and the spans the
// upload reads. Spans must cover every tensor byte exactly once.

import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkModel } from "../src/arch/index.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { readGguf } from "../src/gguf/index.ts";
import { ARENA_ALIGNMENT, planLoad, uploadSpans, type LoadPlan } from "../src/load/index.ts";
import { newUploadJob } from "../src/load/spans.ts";
import { expectExactCoverage } from "./support/coverage.ts";
import { hugeSparseModel } from "./support/huge.ts";
import { tempDirs } from "./support/temp.ts";

const tempDir = tempDirs(); // removed after this file's tests

async function planOf(name: string) {
  const g = await readGguf(await ensureModelFixture(name, { sparse: true }));
  return { g, plan: planLoad(g, checkModel(g)) };
}

describe("Qwen2.5-0.5B Q4_K_M plan", () => {
  test("the ledger: 485,452,288 bytes of data plus alignment padding, between 400 and 600 MB", async () => {
    const { g, plan } = await planOf("qwen2.5-0.5b-instruct-q4_k_m");
    expect(plan.ledger.dataBytes).toBe(485_452_288);
    expect(plan.ledger.totalBytes).toBe(plan.arenaBytes);
    expect(plan.ledger.totalBytes).toBe(plan.ledger.dataBytes + plan.ledger.paddingBytes);
    expect(plan.arenaBytes).toBeGreaterThan(400e6);
    expect(plan.arenaBytes).toBeLessThan(600e6);
    // Padding only rounds each tensor up to the arena alignment.
    expect(plan.ledger.paddingBytes).toBeLessThan(g.tensors.length * ARENA_ALIGNMENT);
    expect(plan.ledger.entries.length).toBe(291);
    for (const e of plan.ledger.entries) {
      expect(e.offset % ARENA_ALIGNMENT).toBe(0);
      expect(e.padding).toBeGreaterThanOrEqual(0);
      expect(e.padding).toBeLessThan(ARENA_ALIGNMENT);
    }
    expect(plan.tiedHead).toBe(false);
  });

  for (const slotBytes of [2 << 20, 8 << 20, 4 << 20, (1 << 20) + 8, 65_536]) {
    test(`spans of ${slotBytes} bytes${slotBytes === 2 << 20 ? " (the default)" : ""} cover every tensor byte exactly once`, async () => {
      const { plan } = await planOf("qwen2.5-0.5b-instruct-q4_k_m");
      expectExactCoverage(plan, slotBytes);
    });
  }

  test("spans packed into shared memory read back exactly", async () => {
    const { plan } = await planOf("qwen2.5-0.5b-instruct-q4_k_m");
    const spans = uploadSpans(plan, 2 << 20);
    const job = newUploadJob(spans, [7], 12, "tapered");
    expect(job.spans.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(job.claims.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(job.spanCount).toBe(spans.length);
    expect(job.bytes).toBe(plan.uploadBytes);
    const w = (i: number) => Number(job.spans[i]!);
    const back = spans.map((_, i) => {
      const at = w(i);
      expect(w(i + 1) - at).toBe(4 + 3 * w(at + 3));
      return { fd: w(at), shard: 0, fileOffset: w(at + 1), bytes: w(at + 2), pieces: [...job.spans.subarray(at + 4, at + 4 + 3 * w(at + 3))].map(Number) };
    });
    expect(back).toEqual(spans.map((s) => ({ fd: 7, ...s, pieces: [...s.pieces] })));
  });
});

test("a tied head is token_embd's memory: an alias, no second copy", async () => {
  const { plan } = await planOf("qwen2.5-0.5b-instruct-q4_k_m-tied");
  const embd = plan.tensors.find((t) => t.name === "token_embd.weight")!;
  const head = plan.tensors.find((t) => t.name === "output.weight")!;
  expect(head.aliasOf).toBe("token_embd.weight");
  expect(head.offset).toBe(embd.offset);
  expect(plan.ledger.get("output.weight")).toMatchObject({ bytes: 0, aliasOf: "token_embd.weight" });
  const untied = (await planOf("qwen2.5-0.5b-instruct-q4_k_m")).plan;
  const bytesOf = (p: LoadPlan, name: string) => p.tensors.find((t) => t.name === name && !t.aliasOf)!.bytes;
  // llama-quantize gives a tied embedding the head's type (Q8_0 here, not Q5_0): the tied arena
  // is the untied one without the head, with that larger embedding (every size here is 256-aligned).
  expect(bytesOf(plan, "token_embd.weight")).toBe(144_643_072);
  expect(untied.arenaBytes - plan.arenaBytes).toBe(bytesOf(untied, "output.weight") + bytesOf(untied, "token_embd.weight") - bytesOf(plan, "token_embd.weight"));
  expectExactCoverage(plan, 8 << 20);
});

test("the model larger than any GPU (test/support/huge.ts) passes the registry, so only VRAM can refuse it", async () => {
  const g = await readGguf(await hugeSparseModel(tempDir("gguf-vram-huge-")));
  const check = checkModel(g);
  expect(check.problems).toEqual([]);
  // token_embd and output, 256 x 2^27 F32 each: 256 GiB before the layers.
  expect(planLoad(g, check).arenaBytes).toBeGreaterThan(2 * 256 * 2 ** 27 * 4);
});

describe("tensor sizes that are not multiples of 8, gaps between tensors (tiny-llama-odd)", () => {
  test("the fixture has them: odd sizes, alignment gaps, and gaps wider than a span may bridge", async () => {
    const { g } = await planOf("tiny-llama-odd");
    expect(g.tensors.filter((t) => t.bytes % 8 !== 0).length).toBeGreaterThanOrEqual(15);
    const byOffset = [...g.tensors].sort((a, b) => a.offset - b.offset);
    const gaps = byOffset.slice(1).map((t, i) => t.offset - (byOffset[i]!.offset + byOffset[i]!.bytes));
    expect(gaps.filter((x) => x > 0 && x < 32).length).toBeGreaterThan(5);
    expect(gaps.filter((x) => x > 64 * 1024).length).toBe(2);
  });

  for (const slotBytes of [2 << 20, 4096, 4099, 1000]) {
    test(`spans of ${slotBytes} bytes cover every tensor byte exactly once`, async () => {
      const { plan } = await planOf("tiny-llama-odd");
      const spans = expectExactCoverage(plan, slotBytes);
      // A wide gap is never read: the spans around it are separate reads.
      expect(spans.length).toBeGreaterThanOrEqual(3);
    });
  }
});
