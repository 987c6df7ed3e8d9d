// What the load command needs from the GPU side, behind one interface, so the
// prompts and flags can be tested with a stand-in GPU on a machine without one.

import type { VramLedger } from "../cuda/index.ts";
import { listDevices, type DeviceInfo } from "../cuda/index.ts";
import { loadModel, toLoadError, type LoadOptions, type LoadReport } from "../load/index.ts";
import { memInfo, openCuda } from "../cuda/index.ts";

export interface LoadedModel {
  readonly report: LoadReport;
  readonly ledger: VramLedger;
  /** cudaMemGetInfo free bytes now. */
  freeBytes(): number;
  close(): void;
}

export interface GpuBackend {
  /** The CUDA devices; throws a LoadError (NO_CUDA_DEVICE) when there are none. */
  devices(): Promise<DeviceInfo[]>;
  load(path: string, options: LoadOptions): Promise<LoadedModel>;
  /** GPU memory nvidia-smi reports for this process, in bytes; null when it cannot tell. */
  nvidiaSmiBytes(): number | null;
}

export const realGpu: GpuBackend = {
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
  async load(path, options) {
    const { model, report } = await loadModel(path, options);
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
