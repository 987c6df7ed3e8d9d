// `bun run load` in a terminal with no flags: choose a model and a GPU, see the
// plan, watch the upload, read the summary, hold the model until Enter.
// Input and output are streams, so tests can drive every prompt.

import { existsSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { cancel, confirm, intro, isCancel, log, note, outro, select } from "@clack/prompts";
import { relative } from "node:path";
import type { DeviceInfo } from "../cuda/index.ts";
import { FixtureWriteError } from "../fixtures/write-errors.ts";
import { LoadError, toLoadError } from "../load/index.ts";
import { progressBar, spinner, type ActivityUi } from "./activity.ts";
import type { GpuBackend, LoadedModel } from "./backend.ts";
import { defaultPlaces, discoverModels, type Candidate, type SearchPlace } from "./discover.ts";
import { fitLines, fitsLine, gpusText, planLines, type Planned } from "./load-report.ts";
import { perDeviceText, summaryLines } from "./load-summary.ts";
import { cancelledAfterLoad, DEFAULT_MODEL_ABOUT, defaultModelPath, devicesOrNull, ensureDefaultModel, placementOptions, planFile, planFor, waitForEnter, type Target } from "./load-steps.ts";
import { chooseSeveral, type Ui } from "./load-several.ts";
import { humanBytes, mib } from "./format.ts";
import { EXIT } from "./main.ts";

export interface InteractiveIo {
  readonly input: Readable;
  readonly output: Writable;
  /** Aborted on Ctrl-C outside a prompt (during the upload, or while holding). */
  readonly signal: AbortSignal;
  /**
   * What Ctrl-C at a spinner or the progress bar does: they read the keys
   * themselves, so the terminal sends no SIGINT (default: raise one).
   */
  readonly interrupt?: () => void;
  /** Where to look for models (default: ./models, ./fixtures, ., and the caches). */
  readonly places?: readonly SearchPlace[];
}

class Cancelled extends Error {}

/** The user chose to load nothing (No to creating the synthetic model): exit 0. */
class NothingToLoad extends Error {}

/** A prompt's answer, or Cancelled when the user pressed Ctrl-C or Escape. */
function answer<T>(value: T): Exclude<T, symbol> {
  if (isCancel(value)) throw new Cancelled();
  return value as Exclude<T, symbol>;
}

export async function runInteractive(paths: readonly string[], gpu: GpuBackend, io: InteractiveIo): Promise<number> {
  const ui = { input: io.input, output: io.output, interrupt: io.interrupt };
  intro("gguf-vram — load a GGUF model into GPU memory", ui);
  let planned: Planned | null = null;
  try {
    const path = await chooseModel(paths, io, ui);
    planned = await planFile(path);
    const { devices, error } = await devicesOrNull(gpu, io.signal, (text) => {
      const s = spinner(ui);
      s.start(`${text[0]!.toUpperCase()}${text.slice(1)}`);
      const end = { built: () => s.stop("Built the CUDA library"), cancelled: () => s.cancel("The build was stopped; nothing was kept"), failed: () => s.error("The build failed") };
      return { done: (outcome) => end[outcome]() };
    });
    if (!devices) {
      log.error(`${error!.message}\n${error!.hint}`, ui);
      note(planLines(planned).join("\n"), "what the load would do (dry run)", ui);
      outro("nothing was loaded", ui);
      return error!.exitCode;
    }
    const target = await chooseTarget(planned, devices, ui);
    planned = planFor(planned, target, devices);
    const several = target.kind !== "single";
    note([...planLines(planned, devices), ...(several ? fitLines(planned, devices) : [])].join("\n"), "the plan", ui);
    const go = answer(await confirm({ ...ui, message: confirmation(planned) }));
    if (!go) {
      outro("nothing was loaded", ui);
      return EXIT.ok;
    }
    const loaded = await upload(gpu, planned, io, ui);
    try {
      note(summaryLines(loaded, gpu.nvidiaSmiBytes(devices), false).join("\n"), "in VRAM", ui);
      log.info(`The model stays in VRAM until you press Enter (look at it with nvidia-smi).`, ui);
      const how = await waitForEnter(io.input, io.signal);
      loaded.close();
      if (how === "signal") {
        cancel(`cancelled: freed ${humanBytes(loaded.ledger.totalBytes)} of VRAM`, ui);
        return EXIT.cancelled;
      }
      outro(`freed ${humanBytes(loaded.ledger.totalBytes)} of VRAM`, ui);
      return EXIT.ok;
    } finally {
      loaded.close();
    }
  } catch (e) {
    if (e instanceof NothingToLoad) {
      outro("nothing was loaded", ui);
      return EXIT.ok;
    }
    if (e instanceof Cancelled) {
      cancel("cancelled: nothing is held", ui);
      return EXIT.cancelled;
    }
    const err = e instanceof FixtureWriteError ? e : toLoadError(e);
    if (err.code === "CANCELLED") {
      cancel(`cancelled: ${err.hint}`, ui);
      return EXIT.cancelled;
    }
    log.error(`${err.message}\n${err.hint}`, ui);
    outro("nothing was loaded", ui);
    return err.exitCode;
  } finally {
    planned?.file.close();
  }
}

/**
 * One GPU, as before; with two or more, also "split across several" and
 * "a copy on each", which go on to choosing the GPUs (load-several.ts).
 */
async function chooseTarget(planned: Planned, devices: readonly DeviceInfo[], ui: Ui): Promise<Target> {
  const arena = planned.plan.arenaBytes;
  const one = devices.map((d) => ({ value: d.index as number | "split" | "replicas", label: `GPU ${d.index}: ${d.name}`, hint: fitsLine(d, arena).split(" — ")[1] }));
  const free = devices.reduce((n, d) => n + d.freeBytes, 0);
  const several =
    devices.length < 2 ? []
    : [
        { value: "split" as const, label: "Several GPUs, one model split across them", hint: `by layers, as llama.cpp does · ${humanBytes(free)} free on the ${devices.length} together` },
        { value: "replicas" as const, label: "A copy on each of several GPUs (replicas)", hint: `each needs ${humanBytes(arena)}` },
      ];
  const choice = answer(await select({ ...ui, message: "Which GPU?", options: [...one, ...several] }));
  if (typeof choice === "number") return { kind: "single", device: choice };
  return answer(await chooseSeveral(choice, planned, devices, ui));
}

/** "Load 463.0 MiB into GPU 1?", "… across GPUs 0, 1?", "Load a copy of … onto each of GPUs 0, 1 (… in all)?" */
function confirmation(p: Planned): string {
  const used = p.plan.devices.map((d) => d.device);
  if (p.plan.kind === "single") return `Load ${mib(p.plan.arenaBytes)} into GPU ${used[0]}?`;
  if (p.plan.kind === "split") return `Load ${mib(p.plan.arenaBytes)} across ${gpusText(used)}?`;
  return `Load a copy of ${mib(p.plan.devices[0]!.arenaBytes)} onto each of ${gpusText(used)} (${mib(p.plan.arenaBytes)} in all)?`;
}

/** A path given on the command line is the model (it must exist); otherwise the user picks from what is found. */
async function chooseModel(paths: readonly string[], io: InteractiveIo, ui: ActivityUi): Promise<string> {
  if (paths.length === 1) {
    const given = paths[0]!;
    if (!existsSync(given)) throw new LoadError("FILE_NOT_FOUND", `${given} does not exist`, "check the path; `bun run load` with no path lists the models it finds");
    return given;
  }
  const places = io.places ?? defaultPlaces();
  const s = spinner(ui);
  s.start("Looking for GGUF models");
  const found = await discoverModels([], places, io.signal);
  if (io.signal.aborted) {
    s.cancel("Stopped looking for models");
    throw new Cancelled();
  }
  const usable = found.filter((c) => !c.problem);
  const broken = found.length - usable.length;
  s.stop(
    usable.length === 0
      ? `No GGUF model found in ${places.map((p) => p.label).join(", ")}${broken > 0 ? ` (${broken} file${broken === 1 ? " does" : "s do"} not parse)` : ""}`
      : `Found ${usable.length} model${usable.length === 1 ? "" : "s"}${broken > 0 ? ` (and ${broken} file${broken === 1 ? " that does" : "s that do"} not parse)` : ""}`,
  );
  if (usable.length === 0) return createDefaultModel(io, ui);
  return answer(await select({ ...ui, message: "Which model?", options: found.map(option), maxItems: 12 }));
}

/** Offers the synthetic model, and writes it (or reuses it, when it is already there). */
async function createDefaultModel(io: InteractiveIo, ui: ActivityUi): Promise<string> {
  log.info("To load your own model, put its .gguf file in ./models, or give its path: bun run load path/to/model.gguf", ui);
  const where = shortPath(defaultModelPath());
  const create = answer(await confirm({ ...ui, message: `Create ${DEFAULT_MODEL_ABOUT} as ${where}, so there is something to load?` }));
  if (!create) throw new NothingToLoad();
  const w = spinner(ui);
  w.start("Writing the synthetic model");
  let wrote = false;
  try {
    const path = await ensureDefaultModel(io.signal, { onCreate: () => (wrote = true), onWait: (holder) => w.message(`Waiting for ${holder}, which is writing ${where}`) });
    w.stop(`${wrote ? "Wrote" : "Using"} ${shortPath(path)}`);
    return path;
  } catch (e) {
    if (io.signal.aborted) w.cancel("Writing the synthetic model stopped; the partial file was removed");
    else w.error("Writing the synthetic model failed");
    throw e;
  }
}

/** A path relative to the current folder when it is inside it, else as it is. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}

function option(c: Candidate) {
  const label = relative(process.cwd(), c.path) || c.path;
  if (c.problem) return { value: c.path, label, hint: `${humanBytes(c.size)} · cannot be loaded: ${c.problem}`, disabled: true };
  return { value: c.path, label, hint: `${humanBytes(c.size)}${c.files > 1 ? ` in ${c.files} files` : ""} · ${c.architecture ?? "?"} · ${c.quantization ?? "?"} · ${c.tensors} tensors · ${c.where}` };
}

async function upload(gpu: GpuBackend, planned: Planned, io: InteractiveIo, ui: ActivityUi): Promise<LoadedModel> {
  const total = planned.plan.uploadBytes;
  const bar = progressBar(ui, total);
  bar.start(`Uploading ${humanBytes(total)}`);
  const t0 = performance.now();
  let shown = 0;
  try {
    const loaded = await gpu.load(planned.file, {
      ...placementOptions(planned.placement),
      signal: io.signal,
      onProgress: (done, _, devices) => {
        const s = Math.max((performance.now() - t0) / 1000, 1e-3);
        bar.advance(done - shown, `Uploading ${humanBytes(done)} of ${humanBytes(total)} · ${(done / 1e9 / s).toFixed(1)} GB/s${perDeviceText(devices)}`);
        shown = done;
      },
    });
    cancelledAfterLoad(loaded, io.signal);
    bar.stop(`Uploaded ${humanBytes(total)} in ${loaded.report.timings.upload.toFixed(1)} ms`);
    return loaded;
  } catch (e) {
    const err = e instanceof LoadError ? e : toLoadError(e);
    if (err.code === "CANCELLED") bar.cancel("The upload was stopped");
    else bar.error("The upload failed");
    throw err;
  }
}
