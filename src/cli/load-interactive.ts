// `bun run load` in a terminal with no flags: choose a model and a GPU, see the
// plan, watch the upload, read the summary, hold the model until Enter.
// Input and output are streams, so tests can drive every prompt.

import type { Readable, Writable } from "node:stream";
import { cancel, confirm, intro, isCancel, log, note, outro, progress, select, spinner } from "@clack/prompts";
import { relative } from "node:path";
import { LoadError, toLoadError } from "../load/index.ts";
import type { GpuBackend, LoadedModel } from "./backend.ts";
import { discoverModels, type Candidate, type SearchPlace } from "./discover.ts";
import { fitsLine, planLines, summaryLines, type Planned } from "./load-report.ts";
import { DEFAULT_MODEL_ABOUT, devicesOrNull, ensureDefaultModel, planFile, waitForEnter } from "./load-steps.ts";
import { humanBytes, mib } from "./format.ts";
import { EXIT } from "./main.ts";

export interface InteractiveIo {
  readonly input: Readable;
  readonly output: Writable;
  /** Aborted on Ctrl-C outside a prompt (during the upload, or while holding). */
  readonly signal: AbortSignal;
  /** Where to look for models (default: ./models, ./fixtures, ., and the caches). */
  readonly places?: readonly SearchPlace[];
}

class Cancelled extends Error {}

/** A prompt's answer, or Cancelled when the user pressed Ctrl-C or Escape. */
function answer<T>(value: T): Exclude<T, symbol> {
  if (isCancel(value)) throw new Cancelled();
  return value as Exclude<T, symbol>;
}

export async function runInteractive(paths: readonly string[], gpu: GpuBackend, io: InteractiveIo): Promise<number> {
  const ui = { input: io.input, output: io.output };
  intro("gguf-vram — load a GGUF model into GPU memory", ui);
  try {
    const path = await chooseModel(paths, io, ui);
    const planned = await planFile(path);
    const { devices, error } = await devicesOrNull(gpu);
    if (!devices) {
      log.error(`${error!.message}\n${error!.hint}`, ui);
      note(planLines(planned).join("\n"), "what the load would do (dry run)", ui);
      outro("nothing was loaded", ui);
      return error!.exitCode;
    }
    const device = answer(
      await select({
        ...ui,
        message: "Which GPU?",
        options: devices.map((d) => ({ value: d.index, label: `GPU ${d.index}: ${d.name}`, hint: fitsLine(d, planned.plan.arenaBytes).split(" — ")[1] })),
      }),
    );
    note(planLines(planned).join("\n"), "the plan", ui);
    const go = answer(await confirm({ ...ui, message: `Load ${mib(planned.plan.arenaBytes)} into GPU ${device}?` }));
    if (!go) {
      outro("nothing was loaded", ui);
      return EXIT.ok;
    }
    const loaded = await upload(gpu, planned, device, io, ui);
    try {
      note(summaryLines(loaded, gpu.nvidiaSmiBytes(), false).join("\n"), "in VRAM", ui);
      log.info(`The model stays in VRAM until you press Enter (look at it with nvidia-smi).`, ui);
      const how = await waitForEnter(io.input, io.signal);
      loaded.close();
      outro(`freed ${humanBytes(loaded.ledger.totalBytes)} of VRAM`, ui);
      return how === "signal" ? EXIT.cancelled : EXIT.ok;
    } finally {
      loaded.close();
    }
  } catch (e) {
    if (e instanceof Cancelled) {
      cancel("cancelled: nothing is held", ui);
      return EXIT.cancelled;
    }
    const err = toLoadError(e);
    if (err.code === "CANCELLED") {
      cancel("cancelled: the VRAM and pinned memory the load took are freed", ui);
      return EXIT.cancelled;
    }
    log.error(`${err.message}\n${err.hint}`, ui);
    outro("nothing was loaded", ui);
    return err.exitCode;
  }
}

async function chooseModel(paths: readonly string[], io: InteractiveIo, ui: { input: Readable; output: Writable }): Promise<string> {
  const s = spinner(ui);
  s.start("Looking for GGUF models");
  const found = await discoverModels(paths, io.places);
  const usable = found.filter((c) => !c.problem);
  s.stop(found.length === 0 ? "No GGUF model found" : `Found ${usable.length} model${usable.length === 1 ? "" : "s"}${found.length > usable.length ? ` (and ${found.length - usable.length} file${found.length - usable.length === 1 ? "" : "s"} that do not parse)` : ""}`);
  if (usable.length === 0) {
    const create = answer(await confirm({ ...ui, message: `Create ${DEFAULT_MODEL_ABOUT}, so there is something to load?` }));
    if (!create) throw new Cancelled();
    const w = spinner(ui);
    w.start("Writing the synthetic model");
    const path = await ensureDefaultModel();
    w.stop(`Wrote ${relative(process.cwd(), path)}`);
    return path;
  }
  return answer(await select({ ...ui, message: "Which model?", options: found.map(option), maxItems: 12 }));
}

function option(c: Candidate) {
  const label = relative(process.cwd(), c.path) || c.path;
  if (c.problem) return { value: c.path, label, hint: `${humanBytes(c.size)} · cannot be loaded: ${c.problem}`, disabled: true };
  return { value: c.path, label, hint: `${humanBytes(c.size)} · ${c.architecture ?? "?"} · ${c.quantization ?? "?"} · ${c.tensors} tensors · ${c.where}` };
}

async function upload(gpu: GpuBackend, planned: Planned, device: number, io: InteractiveIo, ui: { input: Readable; output: Writable }): Promise<LoadedModel> {
  const total = planned.plan.uploadBytes;
  const bar = progress({ ...ui, max: total, style: "heavy" });
  bar.start(`Uploading ${humanBytes(total)}`);
  const t0 = performance.now();
  let shown = 0;
  try {
    const loaded = await gpu.load(planned.path, {
      device,
      signal: io.signal,
      onProgress: (done) => {
        const s = Math.max((performance.now() - t0) / 1000, 1e-3);
        bar.advance(done - shown, `Uploading ${humanBytes(done)} of ${humanBytes(total)} · ${(done / 1e9 / s).toFixed(1)} GB/s`);
        shown = done;
      },
    });
    bar.stop(`Uploaded ${humanBytes(total)} in ${loaded.report.timings.upload.toFixed(1)} ms`);
    return loaded;
  } catch (e) {
    bar.error("The upload failed");
    throw e instanceof LoadError ? e : toLoadError(e);
  }
}
