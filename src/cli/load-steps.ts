// Steps the interactive and the flag-driven load share: the default model,
// planning a file, choosing the devices and planning for them, and holding a
// model until Enter.

import type { Readable } from "node:stream";
import type { DeviceInfo } from "../cuda/index.ts";
import { ensureModelFixture, fixturesDir } from "../fixtures/generate.ts";
import { FixtureWriteError } from "../fixtures/write-errors.ts";
import { LoadError, ModelFile, planLoad, toLoadError, type LoadOptions, type Placement } from "../load/index.ts";
import type { GpuBackend, LoadedModel } from "./backend.ts";
import type { Planned } from "./load-report.ts";

export const DEFAULT_MODEL = "qwen2.5-0.5b-instruct-q4_k_m";
export const DEFAULT_MODEL_ABOUT = "the synthetic Qwen2.5-0.5B-Instruct Q4_K_M-layout model (the real file's layout and metadata, random weights, about 491 MB)";

export function defaultModelPath(): string {
  return `${fixturesDir()}/${DEFAULT_MODEL}.gguf`;
}

export interface DefaultModelEvents {
  /** The model is missing and is being written now. */
  readonly onCreate?: (path: string) => void;
  /** Another process is writing it; this one waits for that ("process 1234"). */
  readonly onWait?: (holder: string) => void;
}

/**
 * The default model, written first when it is missing; Ctrl-C (`signal`) stops
 * the writing and removes the partial file. A folder it cannot write, or a full
 * disk, is the FixtureWriteError that says so.
 */
export async function ensureDefaultModel(signal: AbortSignal, events: DefaultModelEvents = {}): Promise<string> {
  try {
    return await ensureModelFixture(DEFAULT_MODEL, { signal, onWrite: (path) => events.onCreate?.(path), onWait: (_, holder) => events.onWait?.(holder) });
  } catch (e) {
    throw e instanceof FixtureWriteError ? e : toLoadError(e);
  }
}

/**
 * A Ctrl-C that landed as the load finished, after its last check for one,
 * still cancels: the model is freed and CANCELLED thrown, not a summary shown.
 */
export function cancelledAfterLoad(loaded: LoadedModel, signal: AbortSignal): void {
  if (!signal.aborted) return;
  loaded.close();
  throw new LoadError("CANCELLED", "the load was cancelled", "the model was freed");
}

/**
 * Open, parse, check against the registry, and plan; a model the registry
 * refuses throws. The file stays open: the load reads through the same
 * descriptor, so what is shown is what is loaded. Close it with planned.file.close().
 */
export async function planFile(path: string, options: { unchecked?: boolean } = {}): Promise<Planned> {
  const file = await ModelFile.open(path, options);
  const placement: Placement = { kind: "single", device: 0 };
  return { path, gguf: file.gguf, check: file.check, plan: planLoad(file.gguf, file.check, placement), placement, file };
}

/** Where the user asked for the model: one GPU, a split (proportions optional), or replicas. */
export type Target =
  | { readonly kind: "single"; readonly device: number }
  | { readonly kind: "split"; readonly devices: readonly number[]; readonly split?: readonly number[] }
  | { readonly kind: "replicas"; readonly devices: readonly number[] };

export function targetDevices(t: Target): readonly number[] {
  return t.kind === "single" ? [t.device] : t.devices;
}

/**
 * The placement for `target`. A split without proportions follows each GPU's
 * free VRAM, as llama.cpp's does; the proportions are fixed here, from the
 * free VRAM the plan shows, so the load puts each layer where the plan said
 * (the library would measure again after creating its contexts, and could
 * move a layer). With no GPU to ask (a dry run), the split is even.
 */
export function placementFor(target: Target, devices: readonly DeviceInfo[] | null): Placement {
  if (target.kind === "single") return { kind: "single", device: target.device };
  if (target.kind === "replicas") return { kind: "replicas", devices: target.devices };
  if (target.split) return { kind: "split", devices: target.devices, split: target.split };
  const free = devices ? target.devices.map((i) => devices[i]?.freeBytes ?? 0) : [];
  return { kind: "split", devices: target.devices, split: free.some((b) => b > 0) ? free : target.devices.map(() => 1) };
}

/** Where a split's proportions came from, for the plan's wording. */
export function splitSource(target: Target, devices: readonly DeviceInfo[] | null): Planned["splitFrom"] {
  if (target.kind !== "split") return undefined;
  return target.split ? "given" : devices ? "free VRAM" : "even";
}

/** The same file planned for `target` (the file stays open; nothing is parsed again). */
export function planFor(planned: Planned, target: Target, devices: readonly DeviceInfo[] | null): Planned {
  const placement = placementFor(target, devices);
  return { ...planned, placement, splitFrom: splitSource(target, devices), plan: planLoad(planned.gguf, planned.check, placement) };
}

/** The load options that put the model where `placement` says. */
export function placementOptions(placement: Placement): Pick<LoadOptions, "device" | "devices" | "split" | "replicas"> {
  if (placement.kind === "single") return { device: placement.device };
  if (placement.kind === "replicas") return { replicas: placement.devices };
  return { devices: placement.devices, split: placement.split };
}

/** What the build's announcement is told when the build ends: built, stopped by Ctrl-C, or failed. */
export type BuildOutcome = "built" | "cancelled" | "failed";

/** Says that a build started; `done` is called once when it ends. */
export type SayBuild = (text: string) => { done: (outcome: BuildOutcome) => void };

/** Builds the native library if needed, saying so (it takes several seconds, once). */
async function prepareGpu(gpu: GpuBackend, signal: AbortSignal, say: SayBuild): Promise<void> {
  const shown: { done?: (outcome: BuildOutcome) => void } = {};
  try {
    await gpu.prepare((targets) => (shown.done = say(`building the CUDA library for ${targets} (first run only, about 10 s)`).done), signal);
    shown.done?.("built");
  } catch (e) {
    shown.done?.(toLoadError(e).code === "CANCELLED" ? "cancelled" : "failed");
    throw e;
  }
}

/**
 * The devices, or null with the error when there is no GPU (or no native
 * library: a dry run needs neither). Builds the library first when needed,
 * saying so through `say`; a Ctrl-C during the build is not swallowed.
 */
export async function devicesOrNull(gpu: GpuBackend, signal: AbortSignal, say: SayBuild): Promise<{ devices: DeviceInfo[] | null; error: LoadError | null }> {
  try {
    await prepareGpu(gpu, signal, say);
    return { devices: await gpu.devices(), error: null };
  } catch (e) {
    const error = toLoadError(e);
    if (error.code === "CANCELLED") throw error;
    return { devices: null, error };
  }
}

/** The device at `index`; BAD_DEVICE (exit 2) when the machine lacks it. `flag` is the flag that named it, for the hint. */
export function pickDevice(devices: readonly DeviceInfo[], index: number, flag = "--device"): DeviceInfo {
  const d = devices[index];
  if (!d) {
    throw new LoadError("BAD_DEVICE", `device ${index} does not exist: this machine has ${devices.length} CUDA device${devices.length === 1 ? "" : "s"} (0..${devices.length - 1})`, `pass ${flag} with ${flag === "--device" ? "one of the indexes" : "indexes"} \`nvidia-smi -L\` lists`);
  }
  return d;
}

/** Every device `target` names, in its order; BAD_DEVICE when the machine lacks one. */
export function pickDevices(devices: readonly DeviceInfo[], target: Target): DeviceInfo[] {
  const flag = target.kind === "single" ? "--device" : target.kind === "split" ? "--devices" : "--replicas";
  return targetDevices(target).map((i) => pickDevice(devices, i, flag));
}

/**
 * Resolves when a line arrives on `input` (Enter), `input` ends, or `signal`
 * fires (Ctrl-C). Returns which.
 */
export function waitForEnter(input: Readable, signal: AbortSignal): Promise<"enter" | "signal"> {
  return new Promise((resolve) => {
    const done = (how: "enter" | "signal") => {
      input.off("data", onData);
      input.off("end", onEnd);
      signal.removeEventListener("abort", onAbort);
      input.pause?.();
      resolve(how);
    };
    const onData = (chunk: Buffer | string) => {
      const s = chunk.toString();
      if (s.includes("\n") || s.includes("\r")) done("enter");
      else if (s.includes("\u0003")) done("signal"); // Ctrl-C in raw mode
    };
    const onEnd = () => done("enter");
    const onAbort = () => done("signal");
    if (signal.aborted) return resolve("signal");
    input.on("data", onData);
    input.on("end", onEnd);
    signal.addEventListener("abort", onAbort);
    input.resume?.();
  });
}
