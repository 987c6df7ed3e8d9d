// The load plan, without a GPU: arena layout, the ledger, and the spans the
// upload reads. Spans must cover every tensor byte exactly once.

import { describe, expect, test } from "bun:test";
import { checkModel } from "../src/arch/index.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { readGguf } from "../src/gguf/index.ts";
import { ARENA_ALIGNMENT, planLoad, uploadSpans, type LoadPlan } from "../src/load/index.ts";
import { newUploadJob } from "../src/load/spans.ts";

async function planOf(name: string) {
  const g = await readGguf(await ensureModelFixture(name, { sparse: true }));
  return { g, plan: planLoad(g, checkModel(g)) };
}

/** Replays the spans' copies into a byte-coverage map of the arena. */
function coverage(plan: LoadPlan, slotBytes: number) {
  const spans = uploadSpans(plan, slotBytes);
  const written = new Map<number, number>(); // arena offset → bytes, per copy
  for (const s of spans) {
    expect(s.bytes).toBeLessThanOrEqual(slotBytes);
    for (let i = 0; i < s.pieces.length; i += 3) {
      const [src, dst, n] = [s.pieces[i]!, s.pieces[i + 1]!, s.pieces[i + 2]!];
      expect(src + n).toBeLessThanOrEqual(s.bytes);
      written.set(dst, (written.get(dst) ?? 0) + n);
      // The bytes copied are the file bytes of the tensor that owns `dst`.
      const t = plan.tensors.find((x) => !x.aliasOf && dst >= x.offset && dst < x.offset + x.bytes)!;
      expect(s.fileOffset + src - t.fileOffset).toBe(dst - t.offset);
    }
  }
  return { spans, written };
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

  for (const slotBytes of [8 << 20, 4 << 20, (1 << 20) + 8, 65_536]) {
    test(`spans of ${slotBytes} bytes cover every tensor byte exactly once`, async () => {
      const { plan } = await planOf("qwen2.5-0.5b-instruct-q4_k_m");
      const { written } = coverage(plan, slotBytes);
      for (const t of plan.tensors) {
        let total = 0;
        for (const [dst, n] of written) if (dst >= t.offset && dst < t.offset + t.bytes) total += n;
        expect([t.name, total]).toEqual([t.name, t.bytes]);
      }
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
  // The tied arena is smaller by exactly the head's bytes (plus its padding).
  expect(untied.arenaBytes - plan.arenaBytes).toBeGreaterThanOrEqual(144_643_072);
  expect(untied.arenaBytes - plan.arenaBytes).toBeLessThan(144_643_072 + ARENA_ALIGNMENT);
  const { written } = coverage(plan, 8 << 20);
  expect([...written.values()].reduce((a, b) => a + b, 0)).toBe(plan.uploadBytes);
});
