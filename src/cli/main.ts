// The one place where errors become a line on stderr and an exit code, and
// where Ctrl-C is handled for every command.
// Exit codes: 0 ok, 1 bad file or load error, 2 usage, 3 no GPU, 4 out of VRAM, 130 cancelled.

import { GgufError } from "../gguf/index.ts";
import { UsageError } from "./args.ts";
import { dim, red } from "./format.ts";
import { writeAllSync } from "./output.ts";
import { enterUserFolder } from "./user-cwd.ts";

export const EXIT = { ok: 0, error: 1, usage: 2, noGpu: 3, outOfVram: 4, cancelled: 130 } as const;

/** Errors that know their exit code and hint (the loader's errors implement this). */
export interface CliError {
  readonly exitCode: number;
  readonly hint?: string;
}

function isCliError(e: unknown): e is Error & CliError {
  return e instanceof Error && typeof (e as Partial<CliError>).exitCode === "number";
}

/** One line for the user, and the exit code. */
export function describeError(e: unknown, debug = false, command = "the command"): { line: string; exitCode: number } {
  if (e instanceof UsageError) return { line: `${red("error:")} ${e.message} (see ${command} --help)`, exitCode: EXIT.usage };
  if (e instanceof GgufError) return { line: `${red("error:")} ${e.file ? `${e.file}: ` : ""}${e.message} — ${e.hint}`, exitCode: EXIT.error };
  if (isCliError(e)) {
    if (e.exitCode === EXIT.cancelled) return { line: `cancelled: ${e.hint ?? e.message}`, exitCode: EXIT.cancelled };
    return { line: `${red("error:")} ${e.hint ? `${e.message} — ${e.hint}` : e.message}`, exitCode: e.exitCode };
  }
  const text = e instanceof Error ? (debug ? (e.stack ?? e.message) : e.message) : String(e);
  return { line: `${red("error:")} unexpected error: ${text}${debug ? "" : " (run with --debug for the stack)"}`, exitCode: EXIT.error };
}

export interface MainContext {
  /** Aborted by the first Ctrl-C (SIGINT) or SIGTERM. */
  readonly signal: AbortSignal;
}

export interface MainOptions {
  /** How the command is run, for "see … --help". */
  readonly command: string;
  /**
   * The command watches `signal` and cleans up after itself: the first Ctrl-C
   * only aborts it, and it returns 130. Otherwise the first Ctrl-C exits at once.
   */
  readonly graceful?: boolean;
}

/**
 * Runs a command: its exit code, its errors as one line, and Ctrl-C as exit 130
 * with a "cancelled" line. A second Ctrl-C always exits at once; what a command
 * leaves half-written is removed by its own process "exit" handlers.
 */
export function runMain(main: (argv: readonly string[], context: MainContext) => Promise<number>, options: MainOptions): void {
  enterUserFolder(); // paths given are the user's, also when `bun run` typed in a subfolder runs this at the package root
  const argv = process.argv.slice(2);
  const debug = argv.includes("--debug");
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (options.graceful && interrupts === 1) return controller.abort();
    writeAllSync(2, `\n${dim("cancelled")}\n`);
    process.exit(EXIT.cancelled);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  main(argv, { signal: controller.signal }).then(
    (code) => process.exit(code),
    (e: unknown) => {
      const { line, exitCode } = describeError(e, debug, options.command);
      writeAllSync(2, `${line}\n`);
      if (debug && e instanceof Error && !(e instanceof UsageError)) writeAllSync(2, `${e.stack}\n`);
      process.exit(exitCode);
    },
  );
}
