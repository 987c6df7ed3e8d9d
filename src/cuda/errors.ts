// Status codes of libgguf_vram become typed errors here, with a hint for the user.

/** gv_status values (cuda/gguf_vram.h). */
export const GV_STATUS = {
  OK: 0,
  INVALID_ARGUMENT: 1,
  NO_DEVICE: 2,
  BAD_DEVICE: 3,
  OUT_OF_MEMORY: 4,
  HOST_MEMORY: 5,
  COPY: 6,
  CUDA: 7,
  CANCELLED: 8,
  READ: 9,
  FILE_SHORT: 10,
  NOT_FREED: 11,
  BENCH_MODE: 12,
  NO_SERVER: 13,
  IN_USE: 14,
  PROTOCOL: 15,
  DISCONNECTED: 16,
  SOCKET: 17,
} as const;

export type CudaErrorCode =
  | "INVALID_ARGUMENT" // a bug on this side of the boundary
  | "NO_DEVICE" // no CUDA device, or no usable driver
  | "BAD_DEVICE" // a device index that does not exist
  | "OUT_OF_VRAM"
  | "HOST_MEMORY" // pinned host memory could not be had
  | "COPY_FAILED"
  | "CUDA_ERROR"
  | "CANCELLED" // an upload or checksum saw its stop flag
  | "READ_FAILED" // read() of the model file failed
  | "FILE_SHORT" // the model file ended before a range it was asked for
  | "NATIVE_LIBRARY" // the .so is missing, stale or cannot be built
  | "CLOSED" // a handle used after close()
  | "NOT_FREED" // gv_arena_free could not even select the device: the memory is still held
  | "BENCH_MODE" // an upload in a benchmark mode finished: VRAM holds no model
  | "NO_SERVER" // nothing listens at the socket path
  | "IN_USE" // another live server holds the socket path
  | "PROTOCOL" // a malformed or oversized frame on the socket
  | "DISCONNECTED" // the other side closed the connection
  | "SOCKET"; // any other socket failure (errno in osError)

const BY_STATUS: Record<number, CudaErrorCode> = {
  [GV_STATUS.INVALID_ARGUMENT]: "INVALID_ARGUMENT",
  [GV_STATUS.NO_DEVICE]: "NO_DEVICE",
  [GV_STATUS.BAD_DEVICE]: "BAD_DEVICE",
  [GV_STATUS.OUT_OF_MEMORY]: "OUT_OF_VRAM",
  [GV_STATUS.HOST_MEMORY]: "HOST_MEMORY",
  [GV_STATUS.COPY]: "COPY_FAILED",
  [GV_STATUS.CUDA]: "CUDA_ERROR",
  [GV_STATUS.CANCELLED]: "CANCELLED",
  [GV_STATUS.READ]: "READ_FAILED",
  [GV_STATUS.FILE_SHORT]: "FILE_SHORT",
  [GV_STATUS.NOT_FREED]: "NOT_FREED",
  [GV_STATUS.BENCH_MODE]: "BENCH_MODE",
  [GV_STATUS.NO_SERVER]: "NO_SERVER",
  [GV_STATUS.IN_USE]: "IN_USE",
  [GV_STATUS.PROTOCOL]: "PROTOCOL",
  [GV_STATUS.DISCONNECTED]: "DISCONNECTED",
  [GV_STATUS.SOCKET]: "SOCKET",
};

const HINTS: Record<CudaErrorCode, string> = {
  INVALID_ARGUMENT: "this is a bug in gguf-vram; please report it with the message",
  NO_DEVICE: "this machine has no usable NVIDIA GPU or driver (nvidia-smi should list one); `bun run load --dry-run` shows the plan without a GPU",
  BAD_DEVICE: "choose one of the devices `nvidia-smi -L` lists",
  OUT_OF_VRAM: "free GPU memory (nvidia-smi shows which processes hold it), or pick a smaller model or another --device",
  HOST_MEMORY: "the host could not pin memory for the upload; free host memory, or lower --workers",
  COPY_FAILED: "a copy to the GPU failed; check `nvidia-smi` and the kernel log (dmesg) for GPU errors",
  CUDA_ERROR: "check `nvidia-smi` and the kernel log (dmesg) for GPU errors",
  CANCELLED: "nothing was kept",
  READ_FAILED: "check the disk and the file's permissions",
  FILE_SHORT: "make sure nothing writes the file while it loads, then load it again",
  NATIVE_LIBRARY: "rebuild the native library with `bun run build --force`",
  CLOSED: "this is a bug in the caller: the handle was used after close()",
  NOT_FREED: "the GPU could not be selected to free its memory; check `nvidia-smi` and the kernel log (dmesg), then close again",
  BENCH_MODE: "benchmark modes only measure: turn them off (debugUploadMode(\"normal\")) before loading a model",
  NO_SERVER: "start one with `bun run serve`, or point GGUF_VRAM_SOCKET at the socket a running server listens on",
  IN_USE: "a server is running there already: use it, stop it, or give this one another socket path (GGUF_VRAM_SOCKET)",
  PROTOCOL: "the other side sent a frame this side cannot read: make sure the client and the server are the same gguf-vram version",
  DISCONNECTED: "the other side closed the connection (it stopped, or was killed); connect again",
  SOCKET: "check the socket's folder: that it exists, is yours and has room for more descriptors (ulimit -n)",
};

const EXIT_CODES: Partial<Record<CudaErrorCode, number>> = { NO_DEVICE: 3, OUT_OF_VRAM: 4, BAD_DEVICE: 2 };

export class CudaError extends Error {
  override readonly name = "CudaError";
  readonly hint: string;
  /** The CLI's exit code for this error (see src/cli/main.ts). */
  readonly exitCode: number;

  constructor(
    readonly code: CudaErrorCode,
    /** The gv_status returned, 0 when the error did not come from the library. */
    readonly status: number,
    /** The cudaError_t behind it, 0 when none. */
    readonly cudaError: number,
    message: string,
    hint?: string,
    /** The errno behind a READ_FAILED or SOCKET (and NO_SERVER), 0 otherwise. */
    readonly osError = 0,
  ) {
    super(message);
    this.hint = hint ?? HINTS[code];
    this.exitCode = EXIT_CODES[code] ?? 1;
  }
}

/** Throw the library's last error for a non-zero status. */
export function check(status: number, lastError: () => string, lastCudaError: () => number, lastOsError: () => number): void {
  if (status === GV_STATUS.OK) return;
  const code = BY_STATUS[status] ?? "CUDA_ERROR";
  throw new CudaError(code, status, lastCudaError(), lastError() || `libgguf_vram failed with status ${status}`, undefined, lastOsError());
}
