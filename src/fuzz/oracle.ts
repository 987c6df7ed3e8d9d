// The rule every input must follow: the reader returns a GgufFile or throws a
// GgufError, and checkModel on a file the reader accepted returns a verdict.
// Anything else thrown is a crash. (Time and memory are watched by the runner.)

import { checkModel, type ModelCheck } from "../arch/index.ts";
import { GgufError, readGguf, type GgufErrorCode, type GgufFile, type HeaderLimits } from "../gguf/index.ts";
import { knownIssueOf } from "./known-issues.ts";
import type { FuzzInput } from "./mutate.ts";

export type Verdict =
  | { readonly kind: "parsed"; readonly file: GgufFile; readonly check: ModelCheck }
  | { readonly kind: "rejected"; readonly code: GgufErrorCode }
  /** The file hits an open issue (known-issues.ts); checkModel was not run. */
  | { readonly kind: "known"; readonly issue: string }
  | { readonly kind: "crash"; readonly stage: "readGguf" | "checkModel"; readonly error: string; readonly stack: string };

/** Initial read windows: one byte, odd sizes, a page, the default; the window grows from there. */
export const WINDOWS = [1, 7, 64, 4096, 1 << 20] as const;

let zeros = new Uint8Array(1 << 20);

/** The input as a Blob: header bytes, then the data section (zeros; only its size matters to the reader). */
export function inputBlob(input: FuzzInput): Blob {
  if (zeros.length < input.dataBytes) zeros = new Uint8Array(input.dataBytes);
  return new Blob([input.head, zeros.subarray(0, input.dataBytes)]);
}

function crash(stage: "readGguf" | "checkModel", e: unknown): Verdict {
  const error = e instanceof Error ? `${e.name}: ${e.message}` : `non-Error thrown: ${String(e)}`;
  return { kind: "crash", stage, error, stack: e instanceof Error ? (e.stack ?? "") : "" };
}

/** Tighter bounds than the reader's own: the seeds are far within those, so their refusals need these to be fuzzed. */
export const TIGHT_LIMITS: Partial<HeaderLimits> = { valueBytes: 1 << 10, headerBytes: 8 << 10 };

export async function judge(input: FuzzInput, initialWindow?: number, limits?: Partial<HeaderLimits>): Promise<Verdict> {
  return judgeBlob(inputBlob(input), initialWindow, limits);
}

export async function judgeBlob(blob: Blob, initialWindow?: number, limits?: Partial<HeaderLimits>): Promise<Verdict> {
  let file: GgufFile;
  try {
    file = await readGguf(blob, { ...(initialWindow === undefined ? {} : { initialWindow }), ...(limits ? { limits } : {}) });
  } catch (e) {
    return e instanceof GgufError ? { kind: "rejected", code: e.code } : crash("readGguf", e);
  }
  const known = knownIssueOf(file);
  if (known) return { kind: "known", issue: known.id };
  try {
    return { kind: "parsed", file, check: checkModel(file) };
  } catch (e) {
    return crash("checkModel", e);
  }
}

/** Same crash: same stage and error, numbers aside (offsets and lengths vary as an input shrinks). */
export function crashSignature(v: Verdict): string | null {
  return v.kind === "crash" ? `${v.stage}: ${v.error.replace(/\d+/g, "N")}` : null;
}
