// Whether this machine has a GPU the tests can use. Without one, GPU suites
// skip with the reason in their name; with GGUF_VRAM_REQUIRE_GPU=1
// (`bun run test:gpu`) a missing GPU fails the run instead.

import { describe, expect, test } from "bun:test";
import { deviceCount, deviceInfo, openCuda, type DeviceInfo } from "../../src/cuda/index.ts";
import { poisonNewArenas } from "../../src/cuda/testing.ts";
import { toLoadError } from "../../src/load/index.ts";

export interface GpuProbe {
  readonly available: boolean;
  readonly reason: string;
  readonly device: DeviceInfo | null;
  /** How many CUDA devices this process sees. */
  readonly count: number;
}

async function probe(): Promise<GpuProbe> {
  try {
    await openCuda();
    const n = deviceCount();
    if (n === 0) return { available: false, reason: "no CUDA device", device: null, count: 0 };
    return { available: true, reason: "", device: deviceInfo(0), count: n };
  } catch (e) {
    return { available: false, reason: toLoadError(e).message, device: null, count: 0 };
  }
}

export const gpu = await probe();

/**
 * Every arena a GPU test allocates is filled with this byte first, so a range
 * an upload never wrote reads as poison, not as an earlier load's bytes left in
 * a reused cudaMalloc block: verify then fails instead of passing.
 */
export const POISON = 0xa5;
if (gpu.available) poisonNewArenas(POISON);
export const requireGpu = process.env.GGUF_VRAM_REQUIRE_GPU === "1";

/** A describe block that runs only with a GPU, and says why it skipped otherwise. */
export function describeGpu(name: string, fn: () => void): void {
  if (gpu.available) return describe(`${name} [${gpu.device!.name}]`, fn);
  if (requireGpu) {
    describe(name, () => {
      test("a GPU is required (bun run test:gpu)", () => {
        throw new Error(`no usable GPU: ${gpu.reason}`);
      });
    });
    return;
  }
  describe.skip(`${name} [skipped: no GPU — ${gpu.reason.split("\n")[0]}]`, fn);
}

/**
 * A describe block that runs only with at least `n` GPUs. A machine with fewer
 * skips it and says why, even under `bun run test:gpu` (one GPU is a machine
 * the project supports; the multi-GPU suites run on the multi-GPU hosts).
 */
export function describeGpus(n: number, name: string, fn: () => void): void {
  if (gpu.count >= n) return describe(`${name} [${gpu.count} × ${gpu.device!.name}]`, fn);
  if (!gpu.available) return describeGpu(name, fn);
  describe.skip(`${name} [skipped: needs ${n} GPUs; this machine has ${gpu.count}]`, fn);
}

export { expect };
