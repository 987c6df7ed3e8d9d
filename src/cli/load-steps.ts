// Steps the interactive and the flag-driven load share: the default model,
// planning a file, choosing a device, and holding a model until Enter.

import type { Readable } from "node:stream";
import type { DeviceInfo } from "../cuda/index.ts";
import { ensureModelFixture, fixturesDir } from "../fixtures/generate.ts";
import { LoadError, ModelFile, planLoad, toLoadError } from "../load/index.ts";
import type { GpuBackend } from "./backend.ts";
import type { Planned } from "./load-report.ts";

export const DEFAULT_MODEL = "qwen2.5-0.5b-instruct-q4_k_m";
export const DEFAULT_MODEL_ABOUT = "the synthetic Qwen2.5-0.5B-Instruct Q4_K_M-layout model (the real file's layout and metadata, random weights, about 491 MB)";

export function defaultModelPath(): string {
  return `${fixturesDir()}/${DEFAULT_MODEL}.gguf`;
}

/** The default model, written first when it is missing; Ctrl-C (`signal`) stops the writing and removes the partial file. */
export async function ensureDefaultModel(signal: AbortSignal, onCreate?: (path: string) => void): Promise<string> {
  try {
    return await ensureModelFixture(DEFAULT_MODEL, { signal, onWrite: (path) => onCreate?.(path) });
  } catch (e) {
    throw toLoadError(e);
  }
}

/**
 * Open, parse, check against the registry, and plan; a model the registry
 * refuses throws. The file stays open: the load reads through the same
 * descriptor, so what is shown is what is loaded. Close it with planned.file.close().
 */
export async function planFile(path: string, options: { unchecked?: boolean } = {}): Promise<Planned> {
  const file = await ModelFile.open(path, options);
  return { path, gguf: file.gguf, check: file.check, plan: planLoad(file.gguf, file.check), file };
}

/** Builds the native library if needed, saying so (it takes several seconds, once). */
async function prepareGpu(gpu: GpuBackend, signal: AbortSignal, say: (text: string) => { done: () => void }): Promise<void> {
  let shown: { done: () => void } | null = null;
  try {
    await gpu.prepare((targets) => (shown = say(`building the CUDA library for ${targets} (first run only, about 10 s)`)), signal);
  } finally {
    (shown as { done: () => void } | null)?.done();
  }
}

/**
 * The devices, or null with the error when there is no GPU (or no native
 * library: a dry run needs neither). Builds the library first when needed,
 * saying so through `say`; a Ctrl-C during the build is not swallowed.
 */
export async function devicesOrNull(gpu: GpuBackend, signal: AbortSignal, say: (text: string) => { done: () => void }): Promise<{ devices: DeviceInfo[] | null; error: LoadError | null }> {
  try {
    await prepareGpu(gpu, signal, say);
    return { devices: await gpu.devices(), error: null };
  } catch (e) {
    const error = toLoadError(e);
    if (error.code === "CANCELLED") throw error;
    return { devices: null, error };
  }
}

export function pickDevice(devices: readonly DeviceInfo[], index: number): DeviceInfo {
  const d = devices[index];
  if (!d) {
    throw new LoadError("BAD_DEVICE", `device ${index} does not exist: this machine has ${devices.length} CUDA device${devices.length === 1 ? "" : "s"} (0..${devices.length - 1})`, "pass --device with one of the indexes `nvidia-smi -L` lists");
  }
  return d;
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
