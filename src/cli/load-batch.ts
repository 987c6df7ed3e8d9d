// `bun run load` driven by flags: never prompts. Used when stdin is not a
// terminal, in CI, or whenever a flag is given.

import type { Readable } from "node:stream";
import type { DeviceProgress, LoadOptions } from "../load/index.ts";
import type { GpuBackend, LoadedModel } from "./backend.ts";
import { dim, humanBytes, red, yellow } from "./format.ts";
import { loadJson } from "./load-json.ts";
import { fitLines, gpusText, planLines, type Planned } from "./load-report.ts";
import { progressText, summaryLines } from "./load-summary.ts";
import { cancelledAfterLoad, DEFAULT_MODEL_ABOUT, defaultModelPath, devicesOrNull, ensureDefaultModel, pickDevices, placementOptions, planFile, planFor, waitForEnter, type Target } from "./load-steps.ts";
import { EXIT } from "./main.ts";

export interface LoadFlags {
  readonly model?: string;
  /** Where the model goes (default: GPU 0). */
  readonly target?: Target;
  readonly verify?: boolean;
  readonly dryRun?: boolean;
  readonly json?: boolean;
  readonly hold?: boolean;
  readonly yes?: boolean;
  readonly workers?: number;
  /** Say each phase on stderr as it starts. */
  readonly debug?: boolean;
  /** Load without the registry's approval. */
  readonly unchecked?: boolean;
}

/** Where the command writes: stdout (results, JSON) and stderr (notes, progress). */
export interface Io {
  /** A line (or lines) on stdout. */
  readonly out: (text: string) => void;
  /** A line on stderr. */
  readonly err: (text: string) => void;
  /** Redraws the progress line; absent when stderr is not a terminal. */
  readonly progress?: (text: string | null) => void;
  readonly stdin: Readable;
  /** Aborted on Ctrl-C. */
  readonly signal: AbortSignal;
}

export async function runBatch(flags: LoadFlags, gpu: GpuBackend, io: Io): Promise<number> {
  const path =
    flags.model ??
    (await ensureDefaultModel(io.signal, {
      onCreate: (p) => io.err(dim(`creating ${DEFAULT_MODEL_ABOUT} at ${p}…`)),
      onWait: (holder) => io.err(dim(`waiting for ${holder}, which is writing ${defaultModelPath()} (if that process is stuck, stop it or remove ${defaultModelPath()}.lock)…`)),
    }));
  if (!flags.model) io.err(dim(`no --model given: loading ${defaultModelPath()}`));
  const planned = await planFile(path, { unchecked: flags.unchecked });
  try {
    return await planAndLoad(planned, flags, gpu, io);
  } finally {
    planned.file.close();
  }
}

async function planAndLoad(parsed: Planned, flags: LoadFlags, gpu: GpuBackend, io: Io): Promise<number> {
  const { devices, error } = await devicesOrNull(gpu, io.signal, (text) => {
    io.err(dim(`${text}…`));
    return { done: () => {} };
  });
  const target = flags.target ?? { kind: "single", device: 0 };
  // A device the machine lacks is an error even for a dry run: a split's plan needs its free VRAM.
  const used = devices ? pickDevices(devices, target) : [];
  const planned = planFor(parsed, target, devices);

  if (flags.dryRun || !devices) {
    if (flags.json) {
      const json = { ...loadJson(planned, used, null, null, false), ...(error && !flags.dryRun ? { error: { code: error.code, message: error.message, hint: error.hint } } : {}) };
      io.out(JSON.stringify(json, null, 2));
    } else {
      if (!devices && !flags.dryRun) io.err(`${red("error:")} ${error!.message} — ${error!.hint}\n${dim("here is what the load would do (the dry-run plan):")}`);
      io.out(planLines(planned, devices).join("\n"));
      if (devices) io.out(fitLines(planned, devices, true).join("\n"));
    }
    return flags.dryRun ? EXIT.ok : error!.exitCode;
  }

  if (!flags.json) {
    io.out(planLines(planned, devices).join("\n"));
    io.out(fitLines(planned, devices).join("\n"));
  }
  const onPhase = flags.debug ? (phase: string) => io.err(dim(`[debug] ${phase}`)) : undefined;
  const options: LoadOptions = { ...placementOptions(planned.placement), verify: flags.verify, workers: flags.workers, signal: io.signal, onPhase };
  const loaded = await loadWithProgress(gpu, planned, options, io, !flags.json);
  cancelledAfterLoad(loaded, io.signal);
  try {
    const smi = gpu.nvidiaSmiBytes(devices);
    if (flags.json) io.out(JSON.stringify(loadJson(planned, used, loaded, smi, flags.verify ?? false), null, 2));
    else io.out(["", ...summaryLines(loaded, smi, flags.verify ?? false)].join("\n"));
    if (flags.hold) {
      io.err(yellow(`holding ${humanBytes(loaded.ledger.totalBytes)} in VRAM on ${gpusText(used.map((d) => d.index))} (look with nvidia-smi); press Enter to free it`));
      const how = await waitForEnter(io.stdin, io.signal);
      if (how === "signal") {
        io.err("cancelled: the model was freed");
        return EXIT.cancelled;
      }
    }
    return EXIT.ok;
  } finally {
    loaded.close();
  }
}

async function loadWithProgress(gpu: GpuBackend, planned: Planned, options: LoadOptions, io: Io, draw: boolean): Promise<LoadedModel> {
  const t0 = performance.now();
  const progress = draw ? io.progress : undefined;
  const onProgress = progress ? (done: number, total: number, devices: readonly DeviceProgress[]) => progress(progressText(done, total, devices, (performance.now() - t0) / 1000)) : undefined;
  try {
    return await gpu.load(planned.file, { ...options, onProgress });
  } finally {
    progress?.(null);
  }
}
