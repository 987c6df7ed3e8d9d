// Steps the interactive and the flag-driven load share: the default model,
// planning a file, choosing a device, and holding a model until Enter.

import type { Readable } from "node:stream";
import { checkModel } from "../arch/index.ts";
import type { DeviceInfo } from "../cuda/index.ts";
import { ensureModelFixture, fixturesDir } from "../fixtures/generate.ts";
import { readGguf } from "../gguf/index.ts";
import { LoadError, planLoad, toLoadError } from "../load/index.ts";
import { modelError } from "../load/errors.ts";
import type { GpuBackend } from "./backend.ts";
import type { Planned } from "./load-report.ts";

export const DEFAULT_MODEL = "qwen2.5-0.5b-instruct-q4_k_m";
export const DEFAULT_MODEL_ABOUT = "the synthetic Qwen2.5-0.5B-Instruct Q4_K_M-layout model (the real file's layout and metadata, random weights, about 491 MB)";

export function defaultModelPath(): string {
  return `${fixturesDir()}/${DEFAULT_MODEL}.gguf`;
}

/** The default model, written first when it is missing. */
export async function ensureDefaultModel(onCreate?: (path: string) => void): Promise<string> {
  return ensureModelFixture(DEFAULT_MODEL, { onWrite: (path) => onCreate?.(path) });
}

/** Parse, check against the registry, and plan; a model the registry refuses throws. */
export async function planFile(path: string): Promise<Planned> {
  let gguf;
  try {
    gguf = await readGguf(path);
  } catch (e) {
    throw toLoadError(e);
  }
  const check = checkModel(gguf);
  if (!check.ok) throw modelError(path, check.problems);
  return { path, gguf, check, plan: planLoad(gguf, check) };
}

/** The devices, or null with the error when there is no GPU. */
export async function devicesOrNull(gpu: GpuBackend): Promise<{ devices: DeviceInfo[] | null; error: LoadError | null }> {
  try {
    return { devices: await gpu.devices(), error: null };
  } catch (e) {
    return { devices: null, error: toLoadError(e) };
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
