// What the load command needs from the GPU side, behind one interface, so the
// prompts and flags can be tested with a stand-in GPU on a machine without one.

import { ensureNativeLibrary } from "../../build.ts";
import type { VramLedger } from "../cuda/index.ts";
import { listDevices, memInfo, openCuda, type DeviceInfo } from "../cuda/index.ts";
import { loadModel, toLoadError, type LoadOptions, type LoadReport, type ModelFile } from "../load/index.ts";

export interface LoadedModel {
  readonly report: LoadReport;
  readonly ledger: VramLedger;
  /** cudaMemGetInfo free bytes now. */
  freeBytes(): number;
  close(): void;
}

export interface GpuBackend {
  /**
   * Makes sure the native library is built; `onBuild` is called when a build
   * starts (the first run: several seconds), and `signal` stops it.
   */
  prepare(onBuild: (targets: string) => void, signal: AbortSignal): Promise<void>;
  /** The CUDA devices; throws a LoadError (NO_CUDA_DEVICE) when there are none. */
  devices(): Promise<DeviceInfo[]>;
  /** Loads a model file the command has already opened and planned (it is not parsed again). */
  load(file: ModelFile, options: LoadOptions): Promise<LoadedModel>;
  /** GPU memory nvidia-smi reports for this process, in bytes; null when it cannot tell. */
  nvidiaSmiBytes(): number | null;
}

export const realGpu: GpuBackend = {
  async prepare(onBuild, signal) {
    try {
      await ensureNativeLibrary({ quiet: true, signal, onBuild });
    } catch (e) {
      throw toLoadError(e);
    }
  },
  async devices() {
    try {
      await openCuda();
      const devices = listDevices();
      if (devices.length === 0) throw new Error("the driver lists no CUDA device");
      return devices;
    } catch (e) {
      throw toLoadError(e);
    }
  },
  async load(file, options) {
    const { model, report } = await loadModel(file, options);
    return { report, ledger: model.ledger, freeBytes: () => memInfo(model.device).freeBytes, close: () => model.close() };
  },
  nvidiaSmiBytes() {
    try {
      const p = Bun.spawnSync(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]);
      if (p.exitCode !== 0) return null;
      for (const line of p.stdout.toString().trim().split("\n")) {
        const [pid, mib] = line.split(",").map((s) => s.trim());
        if (Number(pid) === process.pid) return Number(mib) * 1024 * 1024;
      }
      return null;
    } catch {
      return null; // no nvidia-smi on this machine
    }
  },
};
