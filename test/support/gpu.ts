// Whether this machine has a GPU the tests can use. Without one, GPU suites
// skip with the reason in their name; with GGUF_VRAM_REQUIRE_GPU=1
// (`bun run test:gpu`) a missing GPU fails the run instead.

import { describe, expect, test } from "bun:test";
import { deviceCount, deviceInfo, openCuda, poisonNewArenas, type DeviceInfo } from "../../src/cuda/index.ts";
import { toLoadError } from "../../src/load/index.ts";

export interface GpuProbe {
  readonly available: boolean;
  readonly reason: string;
  readonly device: DeviceInfo | null;
}

async function probe(): Promise<GpuProbe> {
  try {
    await openCuda();
    const n = deviceCount();
    if (n === 0) return { available: false, reason: "no CUDA device", device: null };
    return { available: true, reason: "", device: deviceInfo(0) };
  } catch (e) {
    return { available: false, reason: toLoadError(e).message, device: null };
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

export { expect };
