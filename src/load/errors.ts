// Everything that can stop a load, as one error type with a stable code, one
// sentence, a hint and the CLI exit code. Errors from the reader, the registry
// and the GPU are translated here, keeping the original as `cause`.

import type { ModelProblem } from "../arch/index.ts";
import { CudaError } from "../cuda/index.ts";
import { GgufError } from "../gguf/index.ts";

export type LoadErrorCode =
  | "FILE_NOT_FOUND"
  | "NOT_READABLE"
  | "IS_A_DIRECTORY"
  | "NOT_GGUF"
  | "CORRUPT_FILE"
  | "UNSUPPORTED_ARCHITECTURE"
  | "INVALID_MODEL" // keys missing or contradicting each other
  | "TENSOR_MISSING"
  | "INVALID_DIMENSIONS"
  | "BAD_TENSOR_TYPE"
  | "NO_CUDA_DEVICE"
  | "BAD_DEVICE"
  | "OUT_OF_VRAM"
  | "HOST_MEMORY"
  | "UPLOAD_FAILED"
  | "FILE_CHANGED" // truncated, rewritten or replaced during the load
  | "VERIFY_FAILED"
  | "NATIVE_LIBRARY"
  | "CANCELLED"
  | "CALLBACK_FAILED" // the caller's onProgress or onPhase threw: the load was stopped
  | "BAD_OPTION" // options that contradict each other, or that this call does not take
  | "CLOSED" // a model, tensor or loader used after close()
  | "NO_SUCH_TENSOR"
  | "NOT_FREED" // the GPU could not be selected to free memory: it is still held
  | "BENCH_MODE"; // a benchmark upload mode was on: the upload moved bytes but loaded nothing

const EXIT_CODES: Partial<Record<LoadErrorCode, number>> = { NO_CUDA_DEVICE: 3, OUT_OF_VRAM: 4, BAD_DEVICE: 2, BAD_OPTION: 2, CANCELLED: 130 };

export class LoadError extends Error {
  override readonly name = "LoadError";
  readonly exitCode: number;

  constructor(
    readonly code: LoadErrorCode,
    message: string,
    readonly hint: string,
    options: { cause?: unknown; problems?: readonly ModelProblem[] } = {},
  ) {
    super(message, { cause: options.cause });
    this.exitCode = EXIT_CODES[code] ?? 1;
    this.problems = options.problems ?? [];
  }

  /** For a model the registry refused: every problem found, not only the first. */
  readonly problems: readonly ModelProblem[];
}

const GGUF_DIMENSION_CODES = new Set(["BAD_DIMENSIONS", "DIMENSION_OVERFLOW", "PARTIAL_BLOCK"]);

/** Any error from a load, as a LoadError; `path` names the model file in messages about reading it. */
export function toLoadError(e: unknown, path = "the model file"): LoadError {
  if (e instanceof LoadError) return e;
  if (e instanceof GgufError) {
    const where = e.file ? `${e.file}: ` : "";
    const code: LoadErrorCode =
      e.code === "FILE_NOT_FOUND" || e.code === "NOT_READABLE" || e.code === "IS_A_DIRECTORY" || e.code === "NOT_GGUF" ? e.code
      : e.code === "SPLIT_MISSING_SHARD" ? "FILE_NOT_FOUND"
      : GGUF_DIMENSION_CODES.has(e.code) ? "INVALID_DIMENSIONS"
      : "CORRUPT_FILE";
    return new LoadError(code, `${where}${e.message}`, e.hint, { cause: e });
  }
  if (e instanceof CudaError) {
    if (e.code === "CANCELLED") return cancelled();
    if (e.code === "FILE_SHORT") {
      return new LoadError("FILE_CHANGED", `${path} is shorter than when it was opened (${e.message}): it was truncated`, "make sure nothing writes the file while it loads, then load it again", { cause: e });
    }
    if (e.code === "READ_FAILED") return new LoadError("NOT_READABLE", `${path} could not be read: ${e.message}`, "check the disk and the file's permissions", { cause: e });
    const code: LoadErrorCode =
      e.code === "NO_DEVICE" ? "NO_CUDA_DEVICE"
      : e.code === "BAD_DEVICE" ? "BAD_DEVICE"
      : e.code === "OUT_OF_VRAM" ? "OUT_OF_VRAM"
      : e.code === "HOST_MEMORY" ? "HOST_MEMORY"
      : e.code === "NATIVE_LIBRARY" ? "NATIVE_LIBRARY"
      : e.code === "CLOSED" ? "CLOSED"
      : e.code === "NOT_FREED" ? "NOT_FREED"
      : e.code === "BENCH_MODE" ? "BENCH_MODE"
      : "UPLOAD_FAILED";
    const message = code === "NO_CUDA_DEVICE" ? noDeviceMessage(e) : e.message;
    return new LoadError(code, message, e.hint, { cause: e });
  }
  if (e instanceof Error && e.name === "FixtureCancelled") return cancelled("writing the model was stopped; the partial file was removed");
  if (e instanceof Error && e.name === "NativeBuildError") {
    const build = e as Error & { hint?: string; exitCode?: number };
    if (build.exitCode === 130) return cancelled("the native library's build was stopped; nothing was kept");
    return new LoadError("NATIVE_LIBRARY", e.message, build.hint ?? "install the CUDA toolkit (nvcc)", { cause: e });
  }
  return new LoadError("UPLOAD_FAILED", e instanceof Error ? e.message : String(e), "run with --debug for the stack, and report it", { cause: e });
}

/** One sentence a user can act on; the library's full message stays in `cause` (--debug). */
function noDeviceMessage(e: CudaError): string {
  switch (e.cudaError) {
    case 35: // cudaErrorInsufficientDriver
      return "no CUDA device: no NVIDIA driver is installed, or it is older than this CUDA runtime needs";
    case 100: // cudaErrorNoDevice
      return "no CUDA device: the driver sees no GPU (is CUDA_VISIBLE_DEVICES hiding them?)";
    default:
      return `no CUDA device: ${e.message}`;
  }
}

/** The registry's verdict on a model, as the error of its first problem. */
export function modelError(path: string, problems: readonly ModelProblem[]): LoadError {
  const first = problems[0]!;
  const code: LoadErrorCode =
    first.code === "TENSOR_MISSING" ? "TENSOR_MISSING"
    : first.code === "BAD_SHAPE" ? "INVALID_DIMENSIONS"
    : first.code === "BAD_TYPE" ? "BAD_TENSOR_TYPE"
    : first.code === "UNKNOWN_ARCHITECTURE" ? "UNSUPPORTED_ARCHITECTURE"
    : "INVALID_MODEL";
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? "s" : ""})` : "";
  return new LoadError(code, `${path}: ${first.message}${more}`, `\`bun run inspect ${path}\` lists every problem`, { problems });
}

export function cancelled(hint = "nothing was kept: the VRAM and pinned memory it took are freed"): LoadError {
  return new LoadError("CANCELLED", "the load was cancelled", hint);
}
