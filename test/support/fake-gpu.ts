// A stand-in GPU for the command-line tests on machines without one: the
// command plans for real (parse, registry, plan) and this pretends the upload,
// so the prompts, flags and output can be driven end to end. It has any number
// of devices and honours device, devices (and split) and replicas as the
// library does: the same plan, progress device by device, VRAM per device.
// GPU-box tests use the real one.

import type { DeviceInfo } from "../../src/cuda/index.ts";
import type { GpuBackend, LoadedModel } from "../../src/cli/backend.ts";
import { LoadError, planLoad, type LoadOptions, type ModelFile, type Placement } from "../../src/load/index.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export class FakeGpu implements GpuBackend {
  readonly loads: { path: string; options: LoadOptions }[] = [];
  /** Every onProgress call of the last load: (done, total, per device). */
  readonly progress: { done: number; total: number; devices: { device: number; done: number; total: number }[] }[] = [];
  open = 0;
  /** Free bytes by device index. */
  readonly free: number[];
  /** When set, prepare() "builds" for this long (ms), watching its signal. */
  buildMs = 0;
  /** When set, the "build" fails with this error once it has started. */
  buildError: LoadError | null = null;
  builds = 0;
  /** Milliseconds between progress reports (a progress bar draws on a timer: make it slower to see the bar's text). */
  stepMs = 1;
  /** How replicas get their bytes. */
  route: "peer" | "host" = "peer";
  /** When set, nvidia-smi "lists" this process on each device it holds memory on: that memory plus this much for the CUDA context. */
  smiContextBytes: number | null = null;

  constructor(
    readonly list: DeviceInfo[] = [fakeDevice(0, "Fake H100 80GB", 80 * GiB)],
    readonly failWith: LoadError | null = null,
  ) {
    this.free = list.map((d) => d.freeBytes);
  }

  /** Device 0's free bytes (the only device, in most tests). */
  get freeBytes(): number {
    return this.free[0] ?? 0;
  }

  async prepare(onBuild: (targets: string) => void, signal: AbortSignal): Promise<void> {
    if (this.buildMs === 0 && !this.buildError) return;
    this.builds++;
    onBuild("sm_90");
    if (this.buildError) throw this.buildError;
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

  /** The placement the library would make of these options (a split without proportions follows free VRAM). */
  placementOf(options: LoadOptions): Placement {
    if (options.replicas) return { kind: "replicas", devices: options.replicas };
    if (options.devices) return { kind: "split", devices: options.devices, split: options.split ?? options.devices.map((d) => this.free[d]!) };
    return { kind: "single", device: options.device ?? 0 };
  }

  async load(file: ModelFile, options: LoadOptions): Promise<LoadedModel> {
    this.loads.push({ path: file.path, options });
    this.progress.length = 0;
    if (this.failWith) throw this.failWith;
    const placement = this.placementOf(options);
    const plan = planLoad(file.gguf, file.check, placement);
    const missing = plan.devices.find((d) => this.free[d.device] === undefined);
    if (missing) throw new LoadError("BAD_DEVICE", `device ${missing.device} does not exist`, "use a device the machine has");
    // Each device moves at its own pace: device i has done (1 - i/8) of what device 0 has.
    for (const step of [0.25, 0.5, 1]) {
      if (options.signal?.aborted) throw new LoadError("CANCELLED", "the load was cancelled", "nothing was kept");
      const devices = plan.devices.map((d, i) => ({ device: d.device, done: Math.floor(d.uploadBytes * (step === 1 ? 1 : step * (1 - i / 8))), total: d.uploadBytes }));
      const done = devices.reduce((n, d) => n + d.done, 0);
      this.progress.push({ done, total: plan.uploadBytes, devices });
      options.onProgress?.(done, plan.uploadBytes, devices);
      for (const t0 = performance.now(); performance.now() - t0 < this.stepMs && !options.signal?.aborted; ) await Bun.sleep(Math.min(2, this.stepMs));
    }
    const vram = plan.devices.map((d) => {
      const freeBefore = this.free[d.device]!;
      this.free[d.device] = freeBefore - d.arenaBytes;
      return { device: d.device, freeBefore, freeAfter: this.free[d.device]!, totalVram: this.list[d.device]!.totalBytes };
    });
    this.open++;
    const route = placement.kind === "replicas" ? this.route : "pcie";
    const timings = { cudaWait: 0, cudaInit: 120, parse: 9, plan: 1, allocate: 1, upload: 12, peer: route === "peer" ? 5 : 0, verify: options.verify ? 40 : 0, total: 60 };
    const sum = (f: (v: (typeof vram)[number]) => number) => vram.reduce((n, v) => n + f(v), 0);
    const devices = plan.devices.map((d) => ({ device: d.device, layers: d.layers, tensors: new Set(d.tensors.map((t) => t.name)).size, bytes: d.arenaBytes, ledger: d.ledger }));
    let closed = false;
    return {
      report: { path: file.path, gguf: file.gguf, check: file.check, plan, device: plan.devices[0]!.device, workers: 12, route, freeBefore: sum((v) => v.freeBefore), freeAfter: sum((v) => v.freeAfter), totalVram: sum((v) => v.totalVram), vram, timings },
      ledger: plan.ledger,
      devices,
      freeBytes: (device) => this.free[device]!,
      close: () => {
        if (closed) return;
        closed = true;
        for (const d of plan.devices) this.free[d.device]! += d.arenaBytes;
        this.open--;
      },
    };
  }

  nvidiaSmiBytes(devices: readonly DeviceInfo[]): Map<number, number> | null {
    if (this.smiContextBytes === null) return null;
    const used = new Map<number, number>();
    for (const d of devices) {
      const held = d.freeBytes - this.free[d.index]!;
      if (held > 0) used.set(d.index, Math.ceil((held + this.smiContextBytes) / MiB) * MiB);
    }
    return used;
  }
}

export function fakeDevice(index: number, name: string, total: number, free = total - GiB): DeviceInfo {
  return { index, name, computeCapability: "9.0", multiprocessors: 132, pciBusId: `0000:${index.toString(16).padStart(2, "0")}:00.0`, totalBytes: total, freeBytes: free };
}
