// The one place where errors become a line on stderr and an exit code.
// Exit codes: 0 ok, 1 bad file or load error, 2 usage, 3 no GPU, 4 out of VRAM, 130 cancelled.

import { GgufError } from "../gguf/index.ts";
import { UsageError } from "./args.ts";
import { red } from "./format.ts";

export const EXIT = { ok: 0, error: 1, usage: 2, noGpu: 3, outOfVram: 4, cancelled: 130 } as const;

/** Errors that know their exit code and hint (the loader's errors implement this). */
export interface CliError {
  readonly exitCode: number;
  readonly hint?: string;
}

function isCliError(e: unknown): e is Error & CliError {
  return e instanceof Error && typeof (e as Partial<CliError>).exitCode === "number";
}

export function describeError(e: unknown, debug = false): { line: string; exitCode: number } {
  if (e instanceof UsageError) return { line: `${e.message}`, exitCode: EXIT.usage };
  if (e instanceof GgufError) return { line: `${e.file ? `${e.file}: ` : ""}${e.message} — ${e.hint}`, exitCode: EXIT.error };
  if (isCliError(e)) return { line: e.hint ? `${e.message} — ${e.hint}` : e.message, exitCode: e.exitCode };
  const text = e instanceof Error ? (debug ? (e.stack ?? e.message) : e.message) : String(e);
  return { line: `unexpected error: ${text}${debug ? "" : " (run with --debug for the stack)"}`, exitCode: EXIT.error };
}

export async function runMain(main: (argv: readonly string[]) => Promise<number>, usage: string): Promise<void> {
  const argv = process.argv.slice(2);
  const debug = argv.includes("--debug");
  try {
    process.exitCode = await main(argv);
  } catch (e) {
    const { line, exitCode } = describeError(e, debug);
    console.error(`${red("error:")} ${line}`);
    if (exitCode === EXIT.usage) console.error(usage);
    if (debug && e instanceof Error && !(e instanceof UsageError)) console.error(e.stack);
    process.exitCode = exitCode;
  }
}
