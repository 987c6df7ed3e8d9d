// The library's API says what it does, without a GPU: a Loader's options are
// its loads' defaults and its tuning cannot be changed per load; a caller's
// callback that throws, or an abort, stops a load with its own error; a stop
// never masks a real failure; a Model's failures are LoadErrors.

import { describe, expect, test } from "bun:test";
import { type Arena, CudaError, VramLedger } from "../src/cuda/index.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { cancelled } from "../src/load/errors.ts";
import { LoadError, load, Model } from "../src/load/index.ts";
import { loaderLoadOptions } from "../src/load/options.ts";
import { LoadStop } from "../src/load/stop.ts";

describe("a Loader's options are its loads' defaults", () => {
  test("a load that names no placement goes where the Loader's options say (replicas stay replicas)", () => {
    expect(loaderLoadOptions({ replicas: [0, 1] }, {})).toMatchObject({ replicas: [0, 1] });
    expect(loaderLoadOptions({ devices: [0, 1], split: [3, 1] }, {})).toMatchObject({ devices: [0, 1], split: [3, 1] });
    expect(loaderLoadOptions({ device: 1 }, {})).toMatchObject({ device: 1 });
  });

  test("a load's own placement wins, whole (the Loader's split does not leak into a load on one device)", () => {
    const o = loaderLoadOptions({ devices: [0, 1], split: [3, 1] }, { device: 1 });
    expect(o.device).toBe(1);
    expect(o.devices).toBeUndefined();
    expect(o.split).toBeUndefined();
  });

  test("a split alone gives new proportions to the Loader's devices", () => {
    expect(loaderLoadOptions({ devices: [0, 1] }, { split: [1, 3] })).toMatchObject({ devices: [0, 1], split: [1, 3] });
  });

  test("verify, unchecked, shareable and the replica route default to the Loader's; a load may override each", () => {
    const defaults = { verify: true, unchecked: true, shareable: true, replicaRoute: "host" as const };
    expect(loaderLoadOptions(defaults, {})).toMatchObject(defaults);
    expect(loaderLoadOptions(defaults, { verify: false, unchecked: false, shareable: false, replicaRoute: "peer" })).toMatchObject({ verify: false, unchecked: false, shareable: false, replicaRoute: "peer" });
  });

  for (const key of ["workers", "slots", "slotBytes", "schedule", "hugePages"] as const) {
    test(`${key} on one load is refused (BAD_OPTION, exit 2), not silently ignored`, () => {
      const value = key === "schedule" ? "guided" : key === "hugePages" ? true : 4;
      const e = (() => {
        try {
          loaderLoadOptions({}, { [key]: value } as object);
        } catch (x) {
          return x;
        }
      })() as LoadError;
      expect(e).toBeInstanceOf(LoadError);
      expect(e.code).toBe("BAD_OPTION");
      expect(e.exitCode).toBe(2);
      expect(e.message).toStartWith(`${key} is a setting of the Loader's workers`);
      expect(e.hint).toContain("Loader.open()");
    });
  }
});

describe("a stop never masks a real failure", () => {
  test("the work's own CANCELLED becomes the stop's reason; any other failure stays itself", () => {
    const controller = new AbortController();
    using stop = new LoadStop(controller.signal);
    const real = new LoadError("VERIFY_FAILED", "VRAM does not hold the file's bytes for x", "load again");
    expect(stop.explain(real)).toBe(real);
    controller.abort();
    expect(stop.explain(real)).toBe(real); // an abort after the failure does not turn it into CANCELLED
    expect(stop.explain(new CudaError("CANCELLED", 8, 0, "gv_upload_step: stopped")).code).toBe("CANCELLED");
  });

  test("the first reason is kept: a callback that threw stays the reason even if the caller aborts next", () => {
    const controller = new AbortController();
    using stop = new LoadStop(controller.signal);
    const boom = new Error("progress bar broke");
    stop.callback("onProgress", () => {
      throw boom;
    });
    controller.abort();
    const reported = stop.explain(cancelled());
    expect(reported.code).toBe("CALLBACK_FAILED");
    expect(reported.message).toBe("the onProgress callback threw: progress bar broke");
    expect(reported.cause).toBe(boom);
  });

  test("hooks run once when the work stops, at once for one added after", () => {
    using stop = new LoadStop();
    let ran = 0;
    stop.onStop(() => ran++);
    stop.stop(cancelled());
    stop.stop(cancelled());
    stop.onStop(() => ran++);
    expect(ran).toBe(2);
  });
});

describe("load() with a caller's callback or signal (no GPU needed for the first phase)", () => {
  test("onPhase that throws: CALLBACK_FAILED with the callback's error as cause, not an internal bug", async () => {
    const path = await ensureModelFixture("tiny-qwen2-q4_k_m");
    const boom = new Error("spinner exploded");
    const e = (await load(path, {
      onPhase: () => {
        throw boom;
      },
    }).catch((x: unknown) => x)) as LoadError;
    expect(e).toBeInstanceOf(LoadError);
    expect(e.code).toBe("CALLBACK_FAILED");
    expect(e.message).toBe("the onPhase callback threw: spinner exploded");
    expect(e.cause).toBe(boom);
    expect(e.exitCode).toBe(1);
  });

  test("an abort during the parse: CANCELLED (exit 130), before anything asks for a GPU", async () => {
    const path = await ensureModelFixture("tiny-qwen2-q4_k_m");
    const controller = new AbortController();
    const e = (await load(path, { signal: controller.signal, onPhase: (p) => p === "parse" && controller.abort() }).catch((x: unknown) => x)) as LoadError;
    expect(e.code).toBe("CANCELLED");
    expect(e.exitCode).toBe(130);
  });
});

// ─── a Model's failures are LoadErrors ────────────────────────────────────────

/** An arena stand-in: device memory as a host buffer (the Model only reads, and closes). */
function fakeArena(device: number, bytes: number, closeFails = false): Arena {
  const memory = new Uint8Array(bytes).map((_, i) => i & 0xff);
  let open = true;
  const close = () => {
    open = false;
    if (closeFails) throw new CudaError("CUDA_ERROR", 7, 700, "cudaFree failed: an illegal memory access was encountered");
  };
  return {
    device,
    bytes,
    devicePtr: 0x7f00_0000_0000n + BigInt(device) * 0x1_0000_0000n,
    get closed() {
      return !open;
    },
    read(offset: number, n: number) {
      if (!open) throw new CudaError("CLOSED", 0, 0, "this arena was freed");
      return memory.slice(offset, offset + n);
    },
    close,
    [Symbol.dispose]: close,
  } as unknown as Arena;
}

function fakeModel(closeFails = false): Model {
  const tensor = (name: string, device: number, offset: number) => ({ name, type: 0, shape: [16], bytes: 64, device, offset, shard: 0, fileOffset: 1024 + offset });
  const part = (device: number) => ({
    device,
    arena: fakeArena(device, 256, closeFails),
    layers: null,
    ledger: new VramLedger([], 256, 256),
    tensors: device === 0 ? [tensor("a", 0, 0), tensor("b", 0, 128)] : [tensor("a", 1, 0)],
  });
  return new Model("split", [part(0), part(1)], { path: "m.gguf", fileSize: 2048, mtimeMs: 0, files: [] });
}

describe("a Model's failures reach the caller as LoadErrors", () => {
  const codeOf = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(LoadError);
      return (e as LoadError).code;
    }
    throw new Error("expected a failure");
  };

  test("an unknown tensor, a device that does not hold it, a device outside the model", () => {
    const m = fakeModel();
    expect(codeOf(() => m.tensor("nope"))).toBe("NO_SUCH_TENSOR");
    expect(codeOf(() => m.tensor("b", 1))).toBe("BAD_DEVICE");
    expect(codeOf(() => m.arenaOn(7))).toBe("BAD_DEVICE");
    expect([...m.read("a", 1).subarray(0, 4)]).toEqual([0, 1, 2, 3]);
  });

  test("every call after close() is CLOSED, tensors kept by the caller included", () => {
    const m = fakeModel();
    const kept = m.tensor("b");
    m.close();
    m.close(); // idempotent
    expect(codeOf(() => m.tensor("a"))).toBe("CLOSED");
    expect(codeOf(() => m.read("a"))).toBe("CLOSED");
    expect(codeOf(() => m.parts)).toBe("CLOSED");
    expect(codeOf(() => kept.read())).toBe("CLOSED");
  });

  test("a failure while freeing is a LoadError too, and every arena is still closed", () => {
    const m = fakeModel(true);
    const arenas = m.parts.map((p) => p.arena);
    expect(codeOf(() => m.close())).toBe("UPLOAD_FAILED");
    expect(arenas.every((a) => a.closed)).toBe(true);
  });
});
