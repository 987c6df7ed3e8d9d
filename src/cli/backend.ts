// What the load command needs from the GPU side, behind one interface, so the
// prompts and flags can be tested with a stand-in GPU on a machine without one.

import { ensureNativeLibrary } from "../../build.ts";
import type { VramLedger } from "../cuda/index.ts";
import { listDevices, memInfo, openCuda, type DeviceInfo } from "../cuda/index.ts";
import { loadModel, toLoadError, type LoadOptions, type LoadReport, type Model, type ModelFile } from "../load/index.ts";

export interface LoadedModel {
  readonly report: LoadReport;
  /** Every device's ledger in one (the only device's, for one GPU). */
  readonly ledger: VramLedger;
  /** Each device's part, in the order the load was given them. */
  readonly devices: Model["devices"];
  /** cudaMemGetInfo free bytes on `device` now. */
  freeBytes(device: number): number;
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
  /**
   * GPU memory nvidia-smi reports for this process, in bytes, by device index
   * (devices it does not list are absent); null when it cannot tell.
   */
  nvidiaSmiBytes(devices: readonly DeviceInfo[]): Map<number, number> | null;
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
    return { report, ledger: model.ledger, devices: model.devices, freeBytes: (device) => memInfo(device).freeBytes, close: () => model.close() };
  },
  nvidiaSmiBytes(devices) {
    try {
      const p = Bun.spawnSync(["nvidia-smi", "--query-compute-apps=pid,gpu_bus_id,used_memory", "--format=csv,noheader,nounits"]);
      if (p.exitCode !== 0) return null;
      return smiBytesByDevice(p.stdout.toString(), process.pid, devices);
    } catch {
      return null; // no nvidia-smi on this machine
    }
  },
};

/**
 * A PCI bus id in one spelling: nvidia-smi writes `00000000:18:00.0`, CUDA
 * `0000:18:00.0` (a 4-digit domain), and the hex may be either case. Null when
 * it is not a bus id.
 */
export function normalBusId(id: string): string | null {
  const m = /^(?:([0-9a-f]+):)?([0-9a-f]+):([0-9a-f]+)\.([0-9a-f]+)$/i.exec(id.trim());
  if (!m) return null;
  const hex = (s: string | undefined) => Number.parseInt(s ?? "0", 16).toString(16);
  return `${hex(m[1])}:${hex(m[2])}:${hex(m[3])}.${hex(m[4])}`;
}

/**
 * `nvidia-smi --query-compute-apps=pid,gpu_bus_id,used_memory` output (MiB,
 * no header, no units) → bytes `pid` uses on each device, by device index.
 * Rows of other processes, unknown buses and "[N/A]" amounts are skipped.
 */
export function smiBytesByDevice(csv: string, pid: number, devices: readonly DeviceInfo[]): Map<number, number> {
  const byBus = new Map(devices.map((d) => [normalBusId(d.pciBusId), d.index]));
  const out = new Map<number, number>();
  for (const line of csv.trim().split("\n")) {
    const [p, bus, mib] = line.split(",").map((s) => s.trim());
    if (Number(p) !== pid || !bus || !/^\d+$/.test(mib ?? "")) continue;
    const device = byBus.get(normalBusId(bus));
    if (device !== undefined) out.set(device, (out.get(device) ?? 0) + Number(mib) * 1024 * 1024);
  }
  return out;
}
