// bun run load [file…] [--model F] [--device N | --devices 0,1 [--split 3,1] | --replicas 0,1]
//              [--verify] [--dry-run] [--json] [--hold] [--yes] [--workers N] [--unchecked] [--debug]
//
// In a terminal with no flags it asks (load-interactive.ts); otherwise it does
// what the flags say and never prompts (load-batch.ts).
// Exit codes: 0 ok, 1 load error, 2 usage, 3 no GPU, 4 out of VRAM, 130 cancelled.

import { z } from "zod";
import { realGpu, type GpuBackend } from "./backend.ts";
import { boolFlag, deviceListFlag, intFlag, parseFlags, proportionsFlag, splitArgs, UsageError, type RawArgs } from "./args.ts";
import { runBatch, type Io, type LoadFlags } from "./load-batch.ts";
import { runInteractive } from "./load-interactive.ts";
import type { Target } from "./load-steps.ts";
import { runMain } from "./main.ts";
import { syncSink, type TextSink } from "./output.ts";

export const LOAD_USAGE = `usage: bun run load [file.gguf…] [options]

  With no options in a terminal, asks which model and GPU, shows the plan,
  uploads with a progress bar, and holds the model until Enter.
  With options, when stdin is not a terminal, or in CI ($CI set, not 0 or
  false), it never asks:

  --model FILE    the GGUF file (default: the synthetic Qwen2.5-0.5B model,
                  written to ./fixtures, or $GGUF_VRAM_FIXTURES, if missing)
  --device N      CUDA device index (default 0)
  --devices 0,1   split the model across these GPUs by layers, as llama.cpp
                  does (each GPU holds some layers and its own arena)
  --split 3,1     the split's proportions, one per GPU of --devices
                  (default: each GPU's free VRAM; evenly in a dry run
                  without a GPU)
  --replicas 0,1  a whole copy of the model on each of these GPUs (the file
                  is read once; the GPUs copy to each other peer to peer
                  where they can)
  --verify        check every tensor's VRAM against the file (GPU checksums)
  --dry-run       parse and plan only; needs no GPU
  --json          print one JSON document (plan, ledger, VRAM, timings)
  --hold          keep the model in VRAM until Enter, then free it
  --yes           do not ask for confirmation
  --workers N     upload threads (default: ¾ of the CPUs, at most 12;
                  0 uploads on the main thread)
  --unchecked     load a model the registry refuses or does not know (another
                  architecture): only the GGUF format is checked, every tensor
                  is loaded as the file has it
  --debug         print each phase as it starts, and the stack of an unexpected error

exit codes: 0 ok · 1 load error · 2 usage · 3 no GPU · 4 out of VRAM · 130 cancelled`;

const Flags = z.object({
  model: z.string().min(1, "must be the path of a .gguf file").optional(),
  device: intFlag("a GPU index", 0, 1023),
  devices: deviceListFlag(1023),
  split: proportionsFlag("--devices"),
  replicas: deviceListFlag(1023),
  verify: boolFlag,
  "dry-run": boolFlag,
  json: boolFlag,
  hold: boolFlag,
  yes: boolFlag,
  workers: intFlag("a number of upload threads (0: the main thread)", 0, 256),
  unchecked: boolFlag,
  debug: boolFlag,
  help: boolFlag,
});

export interface LoadEnvironment {
  readonly stdin: NodeJS.ReadStream | import("node:stream").Readable;
  /** Batch output; the prompts draw on `terminal` (process.stdout) instead. */
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  readonly terminal?: import("node:stream").Writable;
  readonly interactive: boolean;
  readonly gpu: GpuBackend;
  readonly signal: AbortSignal;
  /** What Ctrl-C at a spinner or progress bar does (default: raise SIGINT, as the terminal would). */
  readonly interrupt?: () => void;
}

/** $CI set to anything but "", "0" or "false" (any case) means CI: nothing prompts there. */
export function inCI(env: Record<string, string | undefined> = process.env): boolean {
  const value = (env.CI ?? "").trim().toLowerCase();
  return value !== "" && value !== "0" && value !== "false";
}

export function parseLoadArgs(argv: readonly string[]): { args: RawArgs; flags: z.infer<typeof Flags> } {
  const args = splitArgs(argv, ["model", "device", "devices", "split", "replicas", "workers"]);
  return { args, flags: parseFlags(Flags, args.flags) };
}

/** Where the flags put the model; flags that contradict each other are usage errors. */
export function targetOf(flags: Pick<z.infer<typeof Flags>, "device" | "devices" | "split" | "replicas">): Target {
  const given = (["device", "devices", "replicas"] as const).filter((f) => flags[f] !== undefined);
  if (given.length > 1) {
    throw new UsageError(`${given.map((f) => `--${f}`).join(" and ")} are different placements: give one of them (--device N: one GPU; --devices: one model split across GPUs; --replicas: a whole copy on each)`);
  }
  if (flags.split && !flags.devices) throw new UsageError("--split needs --devices: the proportions are theirs, one per GPU (e.g. --devices 0,1 --split 3,1)");
  if (flags.devices) {
    if (flags.split && flags.split.length !== flags.devices.length) {
      throw new UsageError(`--split has ${flags.split.length} proportion${flags.split.length === 1 ? "" : "s"} for the ${flags.devices.length} GPU${flags.devices.length === 1 ? "" : "s"} of --devices: give one per GPU (e.g. --devices 0,1 --split 3,1)`);
    }
    return { kind: "split", devices: flags.devices, ...(flags.split ? { split: flags.split } : {}) };
  }
  if (flags.replicas) return { kind: "replicas", devices: flags.replicas };
  return { kind: "single", device: flags.device ?? 0 };
}

export async function loadCommand(argv: readonly string[], env: LoadEnvironment): Promise<number> {
  const { args, flags } = parseLoadArgs(argv);
  if (flags.help) {
    env.stdout.write(`${LOAD_USAGE}\n`);
    return 0;
  }
  // The same mistake is the same usage error (exit 2) with prompts or without.
  if (args.positionals.length > 1) throw new UsageError("give one model: a path, or --model");
  const given = Object.keys(args.flags).filter((f) => f !== "debug");
  if (env.interactive && given.length === 0) {
    return runInteractive(args.positionals, env.gpu, { input: env.stdin, output: env.terminal ?? process.stdout, signal: env.signal, interrupt: env.interrupt });
  }

  if (args.positionals.length === 1 && flags.model) throw new UsageError("give the model once: a path or --model, not both");
  const model = flags.model ?? args.positionals[0];
  const batch: LoadFlags = { model, target: targetOf(flags), verify: flags.verify, dryRun: flags["dry-run"], json: flags.json, hold: flags.hold, yes: flags.yes, workers: flags.workers, debug: flags.debug, unchecked: flags.unchecked };
  const tty = env.stderr.isTTY === true;
  const io: Io = {
    out: (text) => void env.stdout.write(`${text}\n`),
    err: (text) => void env.stderr.write(`${text}\n`),
    progress: tty ? (text) => void env.stderr.write(text === null ? "\r\x1b[2K" : `\r\x1b[2K  ${text}`) : undefined,
    stdin: env.stdin,
    signal: env.signal,
  };
  return runBatch(batch, env.gpu, io);
}

if (import.meta.main) {
  // First Ctrl-C: cancel what is under way (the load, the hold, the build, writing the default
  // model) and free what it took, exit 130; a second one exits at once.
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true && !inCI();
  runMain((argv, { signal }) => loadCommand(argv, { stdin: process.stdin, stdout: syncSink(1), stderr: syncSink(2), terminal: process.stdout, interactive, gpu: realGpu, signal }), { command: "bun run load", graceful: true });
}
