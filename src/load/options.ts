// What a caller can ask of a load and of a Loader, checked at the edge: where
// the model goes (one GPU, a split, replicas), how it is treated (verify,
// unchecked), the upload tuning, and the callbacks. A Loader's options are the
// defaults of its loads; the tuning belongs to its workers and cannot change
// per load (a load that tries is refused, never silently ignored).

import { cpus } from "node:os";
import type { Schedule } from "../cuda/index.ts";
import { LoadError } from "./errors.ts";
import type { Placement } from "./placement.ts";
import type { ReplicaRoute } from "./replicas.ts";

const MiB = 1024 * 1024;

/**
 * Defaults measured with `bun run bench --sweep` on an H100 host (16 cores):
 * 12 workers × 3 slots × 2 MiB moved 48.8 GB/s (89% of pinned cudaMemcpy);
 * 8 MiB slots fell to 26–29 GB/s and 32–64 MiB slots to 22–25 GB/s (small
 * slots stay in the CPU caches between the read and the DMA), and 8 workers
 * reached 43.7 GB/s. README.md has the table.
 */
export interface UploadTuning {
  /** Upload threads (0: the calling thread, one short step at a time). Default: ¾ of the CPUs, at most 12. */
  readonly workers?: number;
  /** Pinned slots per worker (the ring depth). Default 3. */
  readonly slots?: number;
  /** Bytes per slot. Default 2 MiB. */
  readonly slotBytes?: number;
  /** How workers split the spans (see spans.ts). Default "tapered". */
  readonly schedule?: Schedule;
  /** Pinned rings in 2 MiB transparent huge pages. Default false. */
  readonly hugePages?: boolean;
}

const TUNING_KEYS = ["workers", "slots", "slotBytes", "schedule", "hugePages"] as const;

/** Where a model goes. Give at most one of device, devices (with split) and replicas. */
export interface PlacementOptions {
  /** CUDA device index. Default 0. */
  readonly device?: number;
  /** Split the model across these devices by layers (llama.cpp's rule, placement.ts). */
  readonly devices?: readonly number[];
  /** The split's proportions, one per device (default: each device's free VRAM). */
  readonly split?: readonly number[];
  /** A whole copy of the model on each of these devices (data-parallel serving). */
  readonly replicas?: readonly number[];
  /** How replicas get their bytes: "auto" (default: peer to peer where every pair can), "peer" or "host". */
  readonly replicaRoute?: ReplicaRoute | "auto";
}

/** How a model is treated. */
export interface ModelOptions {
  /** Check every tensor's VRAM against the file (GPU and host checksums). */
  readonly verify?: boolean;
  /**
   * Load a model the registry refuses or does not know (an architecture outside
   * it): only the GGUF format is checked, and every tensor goes to VRAM as it is.
   */
  readonly unchecked?: boolean;
  /**
   * Put the model in shareable memory (CUDA virtual memory another process can
   * map: resident models, src/serve/). Default false: one cudaMalloc per device.
   */
  readonly shareable?: boolean;
  /** Skip the free-VRAM pre-check, so an oversized arena fails in the allocation itself (for tests). */
  readonly skipVramCheck?: boolean;
}

export type LoadPhase = "parse" | "cuda" | "plan" | "allocate" | "upload" | "exchange" | "verify";

/** How far one device's part of a load is. */
export interface DeviceProgress {
  readonly device: number;
  readonly done: number;
  readonly total: number;
}

/**
 * The caller's hooks. A callback that throws stops the load: it fails with
 * CALLBACK_FAILED (the callback's error as its cause) and frees what it took.
 */
export interface LoadCallbacks {
  /** Called as bytes land in VRAM: in all, and device by device. */
  readonly onProgress?: (done: number, total: number, devices: readonly DeviceProgress[]) => void;
  /** Called when a phase starts, for spinners. */
  readonly onPhase?: (phase: LoadPhase) => void;
  /** Aborting it stops the load in whatever phase it is: CANCELLED, everything freed. */
  readonly signal?: AbortSignal;
}

/** Everything load() and loadModel() take. */
export interface LoadOptions extends UploadTuning, PlacementOptions, ModelOptions, LoadCallbacks {}

/** What Loader.open() takes: its workers' tuning, and the defaults of its loads. */
export interface LoaderOptions extends UploadTuning, PlacementOptions, ModelOptions {}

/** What one load on a Loader takes: anything but the tuning, which the Loader's workers fixed. */
export interface LoaderLoadOptions extends PlacementOptions, ModelOptions, LoadCallbacks {}

/**
 * Every pinned ring of a pool together, by default. Measured with `bun run
 * bench:multi` on two 4-GPU hosts (64 cores, 300 MiB L3): the best ring shape put
 * about this much in flight on 1, 2 and 4 GPUs alike (12 workers × 3 slots of
 * 2 MiB, 1 MiB and 512 KiB); on 4 GPUs the single-GPU shape (4× as much) was
 * 26–32% slower, and half as much 18–29% slower. A ring that outgrows the CPU
 * caches sends each byte through DRAM once more (README: Several GPUs).
 */
const RING_BUDGET = 72 * MiB;

/**
 * The tuning for `devices` GPUs at once: ¾ of the CPUs shared among them, at
 * most 12 workers per device, 3 slots each, and slots sized so that every ring
 * together stays within RING_BUDGET (2 MiB for one GPU, 1 MiB for two, 512 KiB
 * for four; never under 256 KiB).
 */
export function defaultTuning(t: UploadTuning = {}, devices = 1): Required<UploadTuning> {
  const workers = t.workers ?? Math.max(1, Math.min(12, Math.round((cpus().length * 0.75) / devices)));
  const slots = t.slots ?? 3;
  const fit = Math.floor(RING_BUDGET / (Math.max(1, workers) * devices * slots) / (64 * 1024)) * 64 * 1024;
  const slotBytes = t.slotBytes ?? Math.min(2 * MiB, Math.max(256 * 1024, fit));
  return { workers, slots, slotBytes, schedule: t.schedule ?? "tapered", hugePages: t.hugePages ?? false };
}

// ─── checking ─────────────────────────────────────────────────────────────────

const badDevice = (message: string, hint: string) => new LoadError("BAD_DEVICE", message, hint);

function deviceList(what: string, list: readonly number[]): readonly number[] {
  if (list.length === 0) throw badDevice(`${what} is empty`, "give one or more device indices, e.g. 0,1");
  for (const d of list) if (!Number.isInteger(d) || d < 0) throw badDevice(`${what}: ${d} is not a device index`, "devices are numbered from 0; `nvidia-smi -L` lists them");
  const twice = list.find((d, i) => list.indexOf(d) !== i);
  if (twice !== undefined) throw badDevice(`${what} names device ${twice} twice`, "name each device once");
  return list;
}

/** Whether the options choose a placement of their own. */
function placesModel(o: PlacementOptions): boolean {
  return o.device !== undefined || o.devices !== undefined || o.replicas !== undefined;
}

/** The devices the options ask for, checked, or undefined when they name none. */
export function requestedDevices(options: PlacementOptions): readonly number[] | undefined {
  const given = [options.device !== undefined, options.devices !== undefined, options.replicas !== undefined].filter(Boolean).length;
  if (given > 1) throw badDevice("device, devices and replicas are different placements: give one of them", "device: one GPU; devices (and split): one model across GPUs; replicas: a whole copy on each");
  if (options.split !== undefined && options.devices === undefined) throw badDevice("split needs devices: the proportions are theirs", "give devices too, e.g. devices [0, 1] with split [3, 1]");
  if (options.replicas) return deviceList("replicas", options.replicas);
  if (options.devices) {
    const devices = deviceList("devices", options.devices);
    const split = options.split;
    if (split) {
      if (split.length !== devices.length) throw badDevice(`split has ${split.length} proportion${split.length === 1 ? "" : "s"} for ${devices.length} devices`, "give one proportion per device, e.g. --devices 0,1 --split 3,1");
      if (split.some((x) => !Number.isFinite(x) || x < 0) || !split.some((x) => x > 0)) throw badDevice(`split ${split.join(",")} is not a set of proportions`, "proportions are numbers ≥ 0, at least one of them above 0");
    }
    return devices;
  }
  if (options.device !== undefined) return deviceList("device", [options.device]);
  return undefined;
}

/** Where one load goes: a placement kind, its devices, and a split's proportions (undefined: by free VRAM). */
export interface Target {
  readonly kind: Placement["kind"];
  readonly devices: readonly number[];
  readonly split?: readonly number[];
}

/** Where a load with `options` goes among `poolDevices` (its Loader's): by default all of them (one, or a split). */
export function targetOf(options: PlacementOptions, poolDevices: readonly number[]): Target {
  const asked = requestedDevices(options);
  const devices = asked ?? poolDevices;
  const missing = devices.find((d) => !poolDevices.includes(d));
  if (missing !== undefined) throw badDevice(`device ${missing} is not one of this loader's devices (${poolDevices.join(", ")})`, "open the Loader with every device its loads use: Loader.open({ devices: [...] })");
  if (options.replicas) return { kind: "replicas", devices };
  if (devices.length === 1 && !options.devices) return { kind: "single", devices };
  return { kind: "split", devices, split: options.split };
}

/**
 * One load's options on a Loader: its own placement (when it names one) or
 * else the Loader's, and its own treatment over the Loader's defaults. Tuning
 * is refused (BAD_OPTION): the Loader's workers were set up with theirs.
 */
export function loaderLoadOptions(defaults: LoaderOptions, options: LoaderLoadOptions): LoadOptions {
  const given = options as LoaderLoadOptions & UploadTuning;
  const tuning = TUNING_KEYS.find((k) => given[k] !== undefined);
  if (tuning) {
    throw new LoadError("BAD_OPTION", `${tuning} is a setting of the Loader's workers, fixed when it opened; a load on it cannot change it`, `give ${tuning} to Loader.open(), or use load() for a one-off load with its own workers`);
  }
  const placement: PlacementOptions = placesModel(options)
    ? pick(options, ["device", "devices", "split", "replicas"])
    : options.split !== undefined
      ? { devices: defaults.devices, split: options.split } // new proportions for the Loader's devices
      : pick(defaults, ["device", "devices", "split", "replicas"]);
  return {
    ...placement,
    replicaRoute: options.replicaRoute ?? defaults.replicaRoute,
    verify: options.verify ?? defaults.verify,
    unchecked: options.unchecked ?? defaults.unchecked,
    shareable: options.shareable ?? defaults.shareable,
    skipVramCheck: options.skipVramCheck ?? defaults.skipVramCheck,
    onProgress: options.onProgress,
    onPhase: options.onPhase,
    signal: options.signal,
  };
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
