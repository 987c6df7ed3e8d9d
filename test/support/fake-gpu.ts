// A stand-in GPU for the command-line tests on machines without one: the
// command plans for real (parse, registry, plan) and this pretends the upload,
// so the prompts, flags and output can be driven end to end. GPU-box tests use
// the real one.

import type { DeviceInfo } from "../../src/cuda/index.ts";
import type { GpuBackend, LoadedModel } from "../../src/cli/backend.ts";
import { LoadError, planLoad, type LoadOptions, type ModelFile } from "../../src/load/index.ts";

const GiB = 1024 ** 3;

export class FakeGpu implements GpuBackend {
  readonly loads: { path: string; options: LoadOptions }[] = [];
  open = 0;
  freeBytes: number;
  /** When set, prepare() "builds" for this long (ms), watching its signal. */
  buildMs = 0;
  builds = 0;

  constructor(
    readonly list: DeviceInfo[] = [fakeDevice(0, "Fake H100 80GB", 80 * GiB)],
    readonly failWith: LoadError | null = null,
  ) {
    this.freeBytes = list[0]?.freeBytes ?? 0;
  }

  async prepare(onBuild: (targets: string) => void, signal: AbortSignal): Promise<void> {
    if (this.buildMs === 0) return;
    this.builds++;
    onBuild("sm_90");
    const t0 = performance.now();
    while (performance.now() - t0 < this.buildMs) {
      if (signal.aborted) throw new LoadError("CANCELLED", "the load was cancelled", "the native library's build was stopped; nothing was kept");
      await Bun.sleep(2);
    }
  }

  async devices(): Promise<DeviceInfo[]> {
    if (this.list.length === 0) throw new LoadError("NO_CUDA_DEVICE", "no CUDA device: the driver sees no GPU", "run on a machine with an NVIDIA GPU; --dry-run shows the plan");
    return this.list;
  }

  async load(file: ModelFile, options: LoadOptions): Promise<LoadedModel> {
    this.loads.push({ path: file.path, options });
    if (this.failWith) throw this.failWith;
    const plan = planLoad(file.gguf, file.check);
    const total = plan.uploadBytes;
    for (const done of [total / 4, total / 2, total]) {
      if (options.signal?.aborted) throw new LoadError("CANCELLED", "the load was cancelled", "nothing was kept");
      options.onProgress?.(Math.floor(done), total, [{ device: options.device ?? 0, done: Math.floor(done), total }]);
      await Bun.sleep(1);
    }
    const before = this.freeBytes;
    this.freeBytes -= plan.arenaBytes;
    this.open++;
    const timings = { cudaWait: 0, cudaInit: 120, parse: 9, plan: 1, allocate: 1, upload: 12, peer: 0, verify: options.verify ? 40 : 0, total: 60 };
    let closed = false;
    return {
      report: { path: file.path, gguf: file.gguf, check: file.check, plan, device: options.device ?? 0, workers: 12, route: "pcie", freeBefore: before, freeAfter: this.freeBytes, totalVram: this.list[0]!.totalBytes, vram: [{ device: options.device ?? 0, freeBefore: before, freeAfter: this.freeBytes, totalVram: this.list[0]!.totalBytes }], timings },
      ledger: plan.ledger,
      freeBytes: () => this.freeBytes,
      close: () => {
        if (closed) return;
        closed = true;
        this.freeBytes += plan.arenaBytes;
        this.open--;
      },
    };
  }

  nvidiaSmiBytes(): number | null {
    return null;
  }
}

export function fakeDevice(index: number, name: string, total: number, free = total - GiB): DeviceInfo {
  return { index, name, computeCapability: "9.0", multiprocessors: 132, pciBusId: `0000:0${index}:00.0`, totalBytes: total, freeBytes: free };
}
