// What a server needs from the loader, on a real GPU, every arena poisoned
// before its upload (support/gpu.ts), every load verified against its file:
// concurrent loads on one Loader, one cancelled among others, a worker killed
// mid-upload, every upload schedule and slot size (odd tensor sizes and gaps
// included), the main-thread path cancelled, verify's own failures.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Arena, liveResources, memInfo } from "../src/cuda/index.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { Loader, load, LoadError, verifyModel, type LoadOptions } from "../src/load/index.ts";
import { poolOf } from "../src/load/loader.ts";
import { describeGpu, POISON } from "./support/gpu.ts";

const NOTHING_LIVE = { arenas: 0, arenaBytes: 0, pinnedRanges: 0, pinnedBytes: 0, stagers: 0, copies: 0 };
const free = () => memInfo(0).freeBytes;

describeGpu("a loader a server can trust", () => {
  let qwen = "";
  let tied = "";
  let odd = "";
  let baseline = 0;

  beforeAll(async () => {
    qwen = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m");
    tied = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m-tied");
    odd = await ensureModelFixture("tiny-llama-odd");
    (await load(odd, { verify: true })).close(); // context and checksum kernel warm
    baseline = free();
  });

  afterAll(() => {
    expect(free()).toBe(baseline);
    expect(liveResources()).toEqual(NOTHING_LIVE);
  });

  test("a new arena reads as poison: an upload that skipped a span could not pass verify", () => {
    const arena = Arena.create(0, 1 << 20);
    try {
      expect(arena.read(12_345, 4096).every((b) => b === POISON)).toBe(true);
    } finally {
      arena.close();
    }
  });

  test("three loads at once on one Loader: three correct models", async () => {
    const loader = await Loader.open();
    try {
      const results = await Promise.all([qwen, tied, odd].map((p) => loader.load(p)));
      try {
        const [a, b, c] = results.map((r) => r.model);
        expect([a!.tensors.size, b!.tensors.size, c!.tensors.size]).toEqual([291, 291, 21]);
        for (const { model, report } of results) {
          expect(report.timings.upload).toBeGreaterThan(0);
          expect((await loader.verify(model)).bytes).toBe(model.ledger.dataBytes);
        }
        expect(liveResources().arenas).toBe(3);
      } finally {
        for (const r of results) r.model.close();
      }
    } finally {
      await loader.close();
    }
  });

  test("cancelling one load of three leaves the other two whole", async () => {
    const loader = await Loader.open({ workers: 4 });
    try {
      const controller = new AbortController();
      const outcomes = await Promise.allSettled([
        loader.load(qwen),
        loader.load(qwen, { signal: controller.signal, onPhase: (p) => p === "upload" && controller.abort() }),
        loader.load(tied),
      ]);
      expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
      expect(((outcomes[1] as PromiseRejectedResult).reason as LoadError).code).toBe("CANCELLED");
      for (const o of outcomes) {
        if (o.status !== "fulfilled") continue;
        await loader.verify(o.value.model);
        o.value.model.close();
      }
    } finally {
      await loader.close();
    }
  });

  test("a worker killed mid-upload fails that load within a second; VRAM and pinned memory back at baseline; the next load is whole", async () => {
    const loader = await Loader.open({ workers: 4 });
    const pool = poolOf(loader);
    try {
      const t = { killed: 0 };
      const e = await loader
        .load(qwen, {
          onPhase: (p) => {
            if (p !== "upload") return;
            setTimeout(() => {
              t.killed = performance.now();
              pool.terminateWorker(2);
            }, 2);
          },
        })
        .then(
          (r) => (r.model.close(), null),
          (x: unknown) => x as LoadError,
        );
      expect(e?.code).toBe("UPLOAD_FAILED");
      expect(e?.message).toContain("upload worker 2 died");
      expect(performance.now() - t.killed).toBeLessThan(1000);
      expect(free()).toBe(baseline);
      const { model } = await loader.load(qwen);
      try {
        await loader.verify(model);
      } finally {
        model.close();
      }
    } finally {
      await loader.close();
    }
    expect(free()).toBe(baseline);
    expect(liveResources()).toEqual(NOTHING_LIVE);
  });

  test("every schedule, slot size and the main thread upload the same bytes", async () => {
    const configs: LoadOptions[] = [
      ...(["tapered", "guided", "chunks", "shares"] as const).map((schedule) => ({ schedule, workers: 6 })),
      { workers: 0 },
      { workers: 3, slotBytes: 4096, slots: 2 },
      { workers: 2, slotBytes: 4099, slots: 5 },
      { workers: 0, slotBytes: 1000 },
    ];
    for (const c of configs) {
      for (const path of [odd, tied]) {
        const model = await load(path, { ...c, verify: true });
        expect([JSON.stringify(c), model.tensors.size]).toEqual([JSON.stringify(c), path === odd ? 21 : 291]);
        model.close();
      }
    }
  });

  test("the main-thread path is cancellable mid-upload and gives everything back", async () => {
    const controller = new AbortController();
    let calls = 0;
    const e = await load(qwen, { workers: 0, signal: controller.signal, onProgress: () => ++calls === 3 && controller.abort() }).catch((x: unknown) => x as LoadError);
    expect((e as LoadError).code).toBe("CANCELLED");
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(free()).toBe(baseline);
    expect(liveResources()).toEqual(NOTHING_LIVE);
  });

  test("verify of a file that vanished or shrank says the file changed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gguf-vram-verify-"));
    const copy = join(dir, "m.gguf");
    try {
      copyFileSync(odd, copy);
      using a = await load(copy);
      truncateSync(copy, 300_000);
      const short = await verifyModel(a).catch((x: unknown) => x as LoadError);
      expect([(short as LoadError).code, (short as LoadError).message]).toEqual(["FILE_CHANGED", expect.stringContaining("shorter")]);
      rmSync(copy);
      const gone = await verifyModel(a).catch((x: unknown) => x as LoadError);
      expect((gone as LoadError).code).toBe("FILE_CHANGED");
      expect((gone as LoadError).message).toContain("no longer exists");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
