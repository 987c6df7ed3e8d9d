// The pipeline: open → parse → registry check → plan → free-VRAM check →
// allocate → upload → (verify) → Model. The CUDA context is created in an
// upload worker while the main thread parses, so the two overlap. Whatever
// fails, the VRAM (on every device), pinned memory and file handles the load
// took are given back.
//
// A model goes to one GPU, is split across several by layers (placement.ts), or
// is copied whole onto several (replicas.ts). Every device has its own arena,
// its own group of upload workers and its own job, and all of them run at once.
//
// Loads are independent: each has its own jobs (cursor, stop flag, byte count),
// so several may run at once on one Loader, and cancelling one stops only it.

import { cpus } from "node:os";
import type { ModelCheck } from "../arch/index.ts";
import { Arena, memInfo, Model, openCuda, nativePath, type Schedule } from "../cuda/index.ts";
import type { GgufFile } from "../gguf/index.ts";
import { cancelled, LoadError, toLoadError } from "./errors.ts";
import { checkPath, ModelFile } from "./model-file.ts";
import type { Placement } from "./placement.ts";
import { planLoad, uploadSpans, type DevicePlan, type LoadPlan } from "./plan.ts";
import { UploadPool, type DeviceJob, type PoolOptions } from "./pool.ts";
import { chooseRoute, exchangeShares, shareRange, shareSpans, type ReplicaRoute } from "./replicas.ts";
import { newUploadJob, type UploadJob } from "./spans.ts";
import { verifyAgainst, verifyModel, type VerifyReport } from "./verify.ts";

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

export interface LoadOptions extends UploadTuning {
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
  /** Check every tensor's VRAM against the file (GPU and host checksums). */
  readonly verify?: boolean;
  /** Called as bytes land in VRAM: in all, and device by device. */
  readonly onProgress?: (done: number, total: number, devices: readonly DeviceProgress[]) => void;
  /** Called when a phase starts, for spinners. */
  readonly onPhase?: (phase: LoadPhase) => void;
  readonly signal?: AbortSignal;
  /**
   * Load a model the registry refuses or does not know (an architecture outside
   * it): only the GGUF format is checked, and every tensor goes to VRAM as it is.
   */
  readonly unchecked?: boolean;
  /** Skip the free-VRAM pre-check, so an oversized arena fails in cudaMalloc itself (for tests). */
  readonly skipVramCheck?: boolean;
}

export type LoadPhase = "cuda" | "parse" | "allocate" | "upload" | "verify";

export interface LoadTimings {
  /** Waiting for the CUDA context and the rings, after parsing (0 when fully overlapped). */
  cudaWait: number;
  /** Context creation and ring registration in the slowest worker (overlapped with parsing). */
  cudaInit: number;
  parse: number;
  plan: number;
  allocate: number;
  upload: number;
  /** Replicas by the peer route: the exchange of shares between devices, after the upload. */
  peer: number;
  verify: number;
  total: number;
}

/** How far one device's part of a load is. */
export interface DeviceProgress {
  readonly device: number;
  readonly done: number;
  readonly total: number;
}

/** One device's VRAM around a load (cudaMemGetInfo). */
export interface DeviceVram {
  readonly device: number;
  readonly freeBefore: number;
  readonly freeAfter: number;
  readonly totalVram: number;
}

export interface LoadReport {
  readonly path: string;
  readonly gguf: GgufFile;
  readonly check: ModelCheck;
  readonly plan: LoadPlan;
  /** The first device (the only one unless the model spans several). */
  readonly device: number;
  /** Upload workers per device. */
  readonly workers: number;
  /** How the bytes reached the GPUs: over each device's PCIe link ("pcie"), or for replicas "peer" or "host". */
  readonly route: "pcie" | ReplicaRoute;
  /** cudaMemGetInfo free bytes just before allocating and just after the upload, every device together. */
  readonly freeBefore: number;
  readonly freeAfter: number;
  readonly totalVram: number;
  /** The same, device by device. */
  readonly vram: readonly DeviceVram[];
  readonly timings: LoadTimings;
}

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

/** Load a GGUF model into VRAM and return the model handle (close it to free the VRAM). */
export async function load(source: string | ModelFile, options: LoadOptions = {}): Promise<Model> {
  return (await loadModel(source, options)).model;
}

/**
 * Load, and report what was done and how long it took. `source` is a path, or a
 * ModelFile already opened (and parsed) by the caller, who keeps it open and
 * closes it; then the header is not parsed again.
 */
export async function loadModel(source: string | ModelFile, options: LoadOptions = {}): Promise<{ model: Model; report: LoadReport }> {
  if (typeof source === "string") checkPath(source); // a wrong path fails before any GPU work starts
  const pool = await startPool(options);
  try {
    return await loadWith(pool, source, options);
  } finally {
    await pool.close();
  }
}

/**
 * A pool kept across loads: the context, workers and pinned rings are set up
 * once, so each load pays only for parsing and the upload (benchmarks, servers).
 * Any number of loads may run at once: their uploads share the workers, each
 * worker taking them in the order they were asked for, and every load keeps
 * its own cursor, progress and cancellation.
 */
export class Loader {
  private constructor(private readonly pool: UploadPool) {}

  /**
   * Workers for `options.device` (default 0), or for every device in `devices`
   * or `replicas`: its loads may then use any of them.
   */
  static async open(options: Omit<LoadOptions, "verify" | "onProgress" | "onPhase" | "signal"> = {}): Promise<Loader> {
    const pool = await startPool(options);
    try {
      await pool.ready;
    } catch (e) {
      await pool.close().catch(() => {});
      throw toLoadError(e);
    }
    return new Loader(pool);
  }

  /**
   * Load onto this loader's devices: by default the one device, or split across
   * all of them; `device`, `devices` (with `split`) or `replicas` choose among them.
   */
  load(source: string | ModelFile, options: LoadOptions = {}): Promise<{ model: Model; report: LoadReport }> {
    return loadWith(this.pool, source, options);
  }

  /** Check a loaded model against its files again, with this loader's workers reading in parallel. */
  verify(model: Model): Promise<VerifyReport> {
    return verifyModel(model, this.pool.workers > 0 ? this.pool : null);
  }

  /** The devices this loader's workers serve. */
  get devices(): readonly number[] {
    return this.pool.options.devices;
  }

  /** Stops the loads in flight, frees every ring and ends the workers. */
  close(): Promise<void> {
    return this.pool.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The loader's worker pool, for tests that kill a worker mid-upload. Not part of the library's API. */
export function poolOf(loader: Loader): UploadPool {
  return (loader as unknown as { pool: UploadPool }).pool;
}

async function startPool(options: LoadOptions): Promise<UploadPool> {
  const devices = requestedDevices(options) ?? [0];
  try {
    await openCuda();
  } catch (e) {
    throw toLoadError(e);
  }
  const tuning: PoolOptions = { libraryPath: nativePath()!, devices, ...defaultTuning(options, devices.length) };
  return UploadPool.start(tuning);
}

// ─── where a load goes ────────────────────────────────────────────────────────

const badOption = (message: string, hint: string) => new LoadError("BAD_DEVICE", message, hint);

function deviceList(what: string, list: readonly number[]): readonly number[] {
  if (list.length === 0) throw badOption(`${what} is empty`, "give one or more device indices, e.g. 0,1");
  for (const d of list) if (!Number.isInteger(d) || d < 0) throw badOption(`${what}: ${d} is not a device index`, "devices are numbered from 0; `nvidia-smi -L` lists them");
  const twice = list.find((d, i) => list.indexOf(d) !== i);
  if (twice !== undefined) throw badOption(`${what} names device ${twice} twice`, "name each device once");
  return list;
}

/** The devices the options ask for, checked, or undefined when they name none. */
function requestedDevices(options: LoadOptions): readonly number[] | undefined {
  const given = [options.device !== undefined, options.devices !== undefined, options.replicas !== undefined].filter(Boolean).length;
  if (given > 1) throw badOption("device, devices and replicas are different placements: give one of them", "device: one GPU; devices (and split): one model across GPUs; replicas: a whole copy on each");
  if (options.split !== undefined && options.devices === undefined) throw badOption("split needs devices: the proportions are theirs", "give devices too, e.g. devices [0, 1] with split [3, 1]");
  if (options.replicas) return deviceList("replicas", options.replicas);
  if (options.devices) {
    const devices = deviceList("devices", options.devices);
    const split = options.split;
    if (split) {
      if (split.length !== devices.length) throw badOption(`split has ${split.length} proportion${split.length === 1 ? "" : "s"} for ${devices.length} devices`, "give one proportion per device, e.g. --devices 0,1 --split 3,1");
      if (split.some((x) => !Number.isFinite(x) || x < 0) || !split.some((x) => x > 0)) throw badOption(`split ${split.join(",")} is not a set of proportions`, "proportions are numbers ≥ 0, at least one of them above 0");
    }
    return devices;
  }
  if (options.device !== undefined) return deviceList("device", [options.device]);
  return undefined;
}

interface Target {
  readonly kind: Placement["kind"];
  readonly devices: readonly number[];
  readonly split?: readonly number[];
}

/** Where one load goes, among the pool's devices: by default all of them (one, or a split). */
function targetOf(options: LoadOptions, poolDevices: readonly number[]): Target {
  const asked = requestedDevices(options);
  const devices = asked ?? poolDevices;
  const missing = devices.find((d) => !poolDevices.includes(d));
  if (missing !== undefined) throw badOption(`device ${missing} is not one of this loader's devices (${poolDevices.join(", ")})`, "open the Loader with every device its loads use: Loader.open({ devices: [...] })");
  if (options.replicas) return { kind: "replicas", devices };
  if (devices.length === 1 && !options.devices) return { kind: "single", devices };
  return { kind: "split", devices, split: options.split };
}

// ─── one load ─────────────────────────────────────────────────────────────────

async function loadWith(pool: UploadPool, source: string | ModelFile, options: LoadOptions): Promise<{ model: Model; report: LoadReport }> {
  const t0 = performance.now();
  const target = targetOf(options, pool.options.devices);
  const timings: LoadTimings = { cudaWait: 0, cudaInit: 0, parse: 0, plan: 0, allocate: 0, upload: 0, peer: 0, verify: 0, total: 0 };
  const phase = (p: LoadPhase) => options.onPhase?.(p);
  const abortIfCancelled = () => {
    if (options.signal?.aborted) throw cancelled();
  };
  let jobs: UploadJob[] = [];
  const onAbort = () => jobs.forEach((j) => j.shared.stop());
  options.signal?.addEventListener("abort", onAbort);

  let file: ModelFile | null = typeof source === "string" ? null : source;
  const arenas: Arena[] = [];
  try {
    phase("parse");
    let t = performance.now();
    file ??= await ModelFile.open(source as string, { unchecked: options.unchecked });
    timings.parse = performance.now() - t;
    abortIfCancelled();

    phase("cuda");
    t = performance.now();
    timings.cudaInit = await pool.ready.catch((e: unknown) => Promise.reject(toLoadError(e)));
    timings.cudaWait = performance.now() - t;
    abortIfCancelled();

    // A split without proportions follows free VRAM, as llama.cpp's does.
    t = performance.now();
    const before = target.devices.map(memInfoOrThrow);
    const placement: Placement =
      target.kind === "single" ? { kind: "single", device: target.devices[0]! }
      : target.kind === "replicas" ? { kind: "replicas", devices: target.devices }
      : { kind: "split", devices: target.devices, split: target.split ?? before.map((v) => v.freeBytes) };
    const plan = planLoad(file.gguf, file.check, placement);
    const route = target.kind === "replicas" ? chooseRoute(target.devices, options.replicaRoute) : "pcie";
    const parts = uploadParts(plan, route, pool.options.slotBytes);
    jobs = parts.map((spans) => newUploadJob(spans, file!.fds, Math.max(1, pool.workers), pool.options.schedule));
    timings.plan = performance.now() - t;

    phase("allocate");
    t = performance.now();
    // Every device is checked before anything is allocated; then a failure on any frees them all.
    if (!options.skipVramCheck) plan.devices.forEach((d, i) => checkFreeVram(d, before[i]!, plan.devices.length > 1));
    for (const d of plan.devices) {
      try {
        arenas.push(Arena.create(d.device, d.arenaBytes));
      } catch (e) {
        throw toLoadError(e);
      }
    }
    timings.allocate = performance.now() - t;

    phase("upload");
    t = performance.now();
    if (options.signal?.aborted) jobs.forEach((j) => j.shared.stop());
    const work: DeviceJob[] = plan.devices.map((d, i) => ({ device: d.device, arena: arenas[i]!.handle, job: jobs[i]! }));
    // Bytes that reached each device: over its own link, then (peer route) from the other devices.
    const read = plan.devices.map(() => 0);
    const received = plan.devices.map(() => 0);
    const progress = () => {
      const devices = plan.devices.map((d, i) => ({ device: d.device, done: read[i]! + received[i]!, total: d.uploadBytes }));
      options.onProgress?.(devices.reduce((n, d) => n + d.done, 0), plan.uploadBytes, devices);
    };
    await pool.upload(work, file.path, (_, perJob) => {
      perJob.forEach((b, i) => (read[i] = b));
      progress();
    });
    timings.upload = performance.now() - t;
    if (route === "peer") {
      abortIfCancelled();
      t = performance.now();
      await exchangeShares(arenas, parts.map(shareRange), (bytes) => {
        bytes.forEach((b, i) => (received[i] = b));
        progress();
      });
      timings.peer = performance.now() - t;
    }
    file.checkUnchanged();
    const after = target.devices.map(memInfoOrThrow);
    abortIfCancelled();

    const stats = file.stats;
    const files = file.paths.map((path, i) => ({ path, fileSize: stats[i]!.size, mtimeMs: stats[i]!.mtimeMs }));
    const model = new Model(
      plan.kind,
      plan.devices.map((d, i) => ({ device: d.device, arena: arenas[i]!, layers: d.layers, ledger: d.ledger, tensors: d.tensors })),
      { ...files[0]!, files },
    );
    arenas.length = 0; // the model owns them now
    if (options.verify) {
      phase("verify");
      t = performance.now();
      try {
        await verifyAgainst(model, file.fds, pool.workers > 0 ? pool : null);
      } catch (e) {
        model.close();
        throw e;
      }
      timings.verify = performance.now() - t;
    }
    timings.total = performance.now() - t0;
    const vram = target.devices.map((device, i) => ({ device, freeBefore: before[i]!.freeBytes, freeAfter: after[i]!.freeBytes, totalVram: before[i]!.totalBytes }));
    const sum = (f: (v: DeviceVram) => number) => vram.reduce((n, v) => n + f(v), 0);
    const report: LoadReport = {
      path: file.path, gguf: file.gguf, check: file.check, plan, device: target.devices[0]!, workers: pool.workers, route,
      freeBefore: sum((v) => v.freeBefore), freeAfter: sum((v) => v.freeAfter), totalVram: sum((v) => v.totalVram), vram, timings,
    };
    return { model, report };
  } catch (e) {
    throw options.signal?.aborted ? cancelled() : toLoadError(e, file?.path);
  } finally {
    for (const a of arenas) a.close();
    if (typeof source === "string") file?.close();
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * What each device reads from the file: its own tensors (one GPU, a split, or
 * replicas by the host route), or, for replicas by the peer route, a contiguous
 * share of the whole model's spans (the shares are exchanged afterwards).
 */
function uploadParts(plan: LoadPlan, route: "pcie" | ReplicaRoute, slotBytes: number) {
  if (route !== "peer") return plan.devices.map((d) => uploadSpans(d, slotBytes));
  return shareSpans(uploadSpans(plan.devices[0]!, slotBytes), plan.devices.length);
}

function memInfoOrThrow(device: number) {
  try {
    return memInfo(device);
  } catch (e) {
    throw toLoadError(e);
  }
}

/** cudaMalloc hands out 2 MiB pages; each arena needs that much free, rounded up. */
function checkFreeVram(d: DevicePlan, vram: { freeBytes: number; totalBytes: number }, several: boolean): void {
  const needed = Math.ceil(d.arenaBytes / (2 * MiB)) * 2 * MiB;
  if (needed <= vram.freeBytes) return;
  const m = (b: number) => (b / MiB).toFixed(1);
  const what = several ? `its part on device ${d.device}${d.layers ? ` (layers ${d.layers[0]}–${d.layers[1]})` : ""} needs` : "the model needs";
  throw new LoadError(
    "OUT_OF_VRAM",
    `${what} ${m(d.arenaBytes)} MiB of VRAM; device ${d.device} has ${m(vram.freeBytes)} MiB free of ${m(vram.totalBytes)} MiB`,
    several
      ? "free GPU memory (nvidia-smi shows which processes hold it), give that device a smaller share (--split), or add a device"
      : "free GPU memory (nvidia-smi shows which processes hold it), or pick a smaller model or another --device",
  );
}
