// A library a server can live in, on a real GPU, every arena poisoned before
// its upload (support/gpu.ts): a tensor the caller keeps keeps its VRAM through
// garbage collections and later loads; an abort in any phase, or a caller's
// callback that throws, ends the load with its own error and every byte of VRAM
// given back, and the Loader goes on working; workers that could not start come
// back; the API refuses what it would ignore; no benchmark switch yields a
// model; a free that could not happen is not counted as one.

import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test";
import { closeSync } from "node:fs";
import { Arena, liveResources, memInfo } from "../src/cuda/index.ts";
import { debugUploadMode, Fault, injectFault, resetFaults } from "../src/cuda/testing.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { load, Loader, LoadError, type DeviceTensor, type LoadPhase } from "../src/load/index.ts";
import { poolOf } from "../src/load/loader.ts";
import { fileRange } from "./support/file-range.ts";
import { describeGpu } from "./support/gpu.ts";

const NOTHING_LIVE = { arenas: 0, arenaBytes: 0, pinnedRanges: 0, pinnedBytes: 0, stagers: 0, copies: 0 };
const free = () => memInfo(0).freeBytes;


const failure = (p: Promise<unknown>) =>
  p.then(
    (r) => {
      (r as { model?: { close(): void }; close?: () => void }).model?.close();
      (r as { close?: () => void }).close?.();
      return null;
    },
    (e: unknown) => e as LoadError,
  );

describeGpu("lifetimes a server relies on", () => {
  let qwen = "";
  let tied = "";
  let baseline = 0;
  let loader: Loader;

  beforeAll(async () => {
    qwen = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m");
    tied = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m-tied");
    loader = await Loader.open({ workers: 4 });
    // Context, rings and kernels warm, and the driver's own heap grown to hold two models at once
    // (it keeps a little of what it grew by: VRAM is compared with each test's start, see beforeEach).
    const two = await Promise.all([loader.load(qwen, { verify: true }), load(tied)]);
    two[0].model.close();
    two[1].close();
  });

  beforeEach(() => {
    baseline = free(); // what each test must give back by its end
  });

  afterAll(async () => {
    resetFaults();
    debugUploadMode("normal");
    await loader.close();
    for (let i = 0; i < 20 && liveResources().arenas > 0; i++) {
      Bun.gc(true);
      await Bun.sleep(20);
    }
    expect(liveResources()).toEqual(NOTHING_LIVE);
  });

  test("the tensors a caller keeps keep their VRAM: through GCs and another load they read back as the file", async () => {
    let kept: DeviceTensor[] = [];
    await (async () => {
      const model = await load(qwen); // dropped below without close(): only the tensors stay reachable
      kept = [...model.tensors.values()].filter((_, i) => i % 15 === 0);
    })();
    for (let i = 0; i < 10; i++) {
      Bun.gc(true);
      await Bun.sleep(10);
    }
    expect(liveResources().arenas).toBe(1); // the safety net did not free it
    const other = await load(tied); // poisoned: had the kept VRAM been freed, it could be this arena now
    try {
      for (const t of kept) expect([t.name, t.read()]).toEqual([t.name, fileRange(qwen, t.fileOffset, t.bytes)]);
    } finally {
      other.close();
    }
    kept = []; // now nothing reaches it: the safety net frees it
    for (let i = 0; i < 20 && liveResources().arenas > 0; i++) {
      Bun.gc(true);
      await Bun.sleep(20);
    }
    expect(liveResources().arenas).toBe(0);
    expect(free()).toBe(baseline);
  });

  for (const at of ["parse", "cuda", "plan", "allocate", "upload", "verify"] as const) {
    test(`an abort as ${at} starts: CANCELLED, all VRAM back, the Loader still loads`, async () => {
      const controller = new AbortController();
      const e = await failure(loader.load(qwen, { verify: true, signal: controller.signal, onPhase: (p) => p === at && controller.abort() }));
      expect([e?.code, e?.exitCode]).toEqual(["CANCELLED", 130]);
      expect(free()).toBe(baseline);
      expect(liveResources().arenas).toBe(0);
    });
  }

  test("an abort in the middle of the upload, and in the middle of verify: CANCELLED, no model", async () => {
    const mid = new AbortController();
    const e1 = await failure(loader.load(qwen, { signal: mid.signal, onProgress: (done, total) => done > total / 3 && mid.abort() }));
    expect(e1?.code).toBe("CANCELLED");
    const late = new AbortController();
    const e2 = await failure(loader.load(qwen, { verify: true, signal: late.signal, onPhase: (p) => p === "verify" && setTimeout(() => late.abort(), 1) }));
    expect(e2?.code).toBe("CANCELLED");
    expect(free()).toBe(baseline);
    expect(liveResources().arenas).toBe(0);
  });

  for (const at of ["parse", "allocate", "upload", "verify"] as const satisfies readonly LoadPhase[]) {
    test(`onPhase throwing at ${at}: CALLBACK_FAILED with the callback's error, all VRAM back`, async () => {
      const boom = new Error(`spinner for ${at} broke`);
      const e = await failure(
        loader.load(qwen, {
          verify: true,
          onPhase: (p) => {
            if (p === at) throw boom;
          },
        }),
      );
      expect([e?.code, e?.message, e?.cause]).toEqual(["CALLBACK_FAILED", `the onPhase callback threw: spinner for ${at} broke`, boom]);
      expect(free()).toBe(baseline);
    });
  }

  test("onProgress throwing mid-upload: that load fails with CALLBACK_FAILED, nothing leaks, the next load verifies", async () => {
    const boom = new Error("progress bar broke");
    const e = await failure(
      loader.load(qwen, {
        onProgress: (done) => {
          if (done > 0) throw boom;
        },
      }),
    );
    expect(e?.code).toBe("CALLBACK_FAILED");
    expect(e?.cause).toBe(boom);
    expect(free()).toBe(baseline);
    const { model } = await loader.load(tied, { verify: true });
    model.close();
  });

  test("a worker whose pinned ring cannot be registered is broken, loads go on, and it rejoins after its backoff", async () => {
    injectFault(Fault.HostPin, 1);
    const two = await Loader.open({ workers: 2 });
    try {
      expect([...poolOf(two).workerStates].sort()).toEqual(["broken", "ready"]);
      (await two.load(qwen, { verify: true })).model.close();
      await Bun.sleep(150);
      (await two.load(qwen, { verify: true })).model.close();
      expect(poolOf(two).workerStates).toEqual(["ready", "ready"]);
    } finally {
      resetFaults();
      await two.close();
    }
    injectFault(Fault.HostPin, 1);
    const e = await failure(load(qwen, { workers: 1 }));
    expect(e?.code).toBe("HOST_MEMORY");
    expect(e?.message).toContain("no upload worker for device 0 could start");
    resetFaults();
    (await load(qwen, { workers: 1 })).close(); // the cause is gone: a fresh load works
    expect(free()).toBe(baseline);
  });

  test("a Loader's options are its loads' defaults, and per-load tuning is refused", async () => {
    const verifying = await Loader.open({ workers: 2, verify: true, shareable: true });
    try {
      const { model, report } = await verifying.load(qwen);
      expect(report.timings.verify).toBeGreaterThan(0);
      expect(model.arena.shareable).toBe(true);
      model.close();
      const e = await failure(verifying.load(qwen, { workers: 8 } as object));
      expect([e?.code, e?.exitCode]).toEqual(["BAD_OPTION", 2]);
    } finally {
      await verifying.close();
    }
  });

  test("Loader.verify and Model calls fail with LoadErrors: a closed model, an aborted verify", async () => {
    const { model } = await loader.load(qwen);
    const controller = new AbortController();
    controller.abort();
    expect((await failure(loader.verify(model, { signal: controller.signal })))?.code).toBe("CANCELLED");
    model.close();
    const closed = await failure(loader.verify(model));
    expect(closed).toBeInstanceOf(LoadError);
    expect(closed?.code).toBe("CLOSED");
  });

  test("a benchmark upload mode never yields a model: the load ends in BENCH_MODE, VRAM back", async () => {
    for (const mode of ["read", "copy"] as const) {
      debugUploadMode(mode);
      try {
        const e = await failure(loader.load(qwen));
        expect([mode, e?.code]).toEqual([mode, "BENCH_MODE"]);
      } finally {
        debugUploadMode("normal");
      }
    }
    expect(free()).toBe(baseline);
    (await loader.load(qwen, { verify: true })).model.close();
  });

  test("an arena whose device cannot be selected is not freed, stays counted and can be closed again", () => {
    const arena = Arena.create(0, 64 << 20);
    const held = free();
    injectFault(Fault.FreeDevice, 1);
    const e = (() => {
      try {
        arena.close();
      } catch (x) {
        return x as { code: string };
      }
    })();
    expect(e?.code).toBe("NOT_FREED");
    expect(arena.closed).toBe(false);
    expect(liveResources().arenas).toBe(1);
    expect(free()).toBe(held);
    arena.close();
    expect(liveResources().arenas).toBe(0);
    expect(free()).toBe(baseline);
  });

  test("a shareable arena holds bytes like any other and exports its memory as a file descriptor", () => {
    const arena = Arena.create(0, 5 << 20, { shareable: true });
    try {
      expect(arena.allocBytes).toBe(6 << 20); // rounded up to the 2 MiB granularity
      const data = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
      arena.write(3 << 20, data);
      expect(arena.read(3 << 20, 1 << 20)).toEqual(data);
      const fd = arena.export();
      expect(fd).toBeGreaterThan(2);
      closeSync(fd);
    } finally {
      arena.close();
    }
    expect(free()).toBe(baseline);
  });
});
