// What can go wrong while building the native libraries, as one error type that
// the CLI prints as one line: what is wrong, where, and what to do.

export class NativeBuildError extends Error {
  override readonly name = "NativeBuildError";
  constructor(
    message: string,
    /** What the user can do about it. */
    readonly hint: string,
    /** 130 when cancelled. */
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export const NVCC_INSTALL_HINT =
  "install the CUDA toolkit (nvcc), e.g. `apt install cuda-toolkit-13-0` or from https://developer.nvidia.com/cuda-downloads, or point NVCC or CUDA_HOME at it";

export function cancelledBuild(): NativeBuildError {
  return new NativeBuildError("the build of the native library was cancelled", "nothing was kept; it builds again on the next run", 130);
}

/**
 * A file-system failure in `folder` as a NativeBuildError naming the folder,
 * with a hint that fits its cause; anything else is returned unchanged.
 */
export function folderError(error: unknown, folder: string, doing: string): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const where = `${doing} in ${folder}`;
  const elsewhere = "or set GGUF_VRAM_CACHE_DIR to a folder you can write";
  switch (code) {
    case "EACCES":
    case "EPERM":
      return new NativeBuildError(`${where} failed: permission denied`, `check the folder's owner and permissions, ${elsewhere}`);
    case "EROFS":
      return new NativeBuildError(`${where} failed: the file system is read-only`, `set GGUF_VRAM_CACHE_DIR to a folder on a writable disk`);
    case "ENOSPC":
    case "EDQUOT":
      return new NativeBuildError(`${where} failed: no space left on the disk (${code})`, `free some space there (the library needs a few MB), ${elsewhere}`);
    case "ENOTDIR":
    case "EEXIST":
      return new NativeBuildError(`${where} failed: a file is in the way of the folder`, `remove or rename that file, ${elsewhere}`);
    case "ENOENT":
      return new NativeBuildError(`${where} failed: a folder on the way does not exist and cannot be made`, `check the path, ${elsewhere}`);
    case undefined:
      return error;
    default:
      return new NativeBuildError(`${where} failed: ${(error as Error).message}`, `check that disk, ${elsewhere}`);
  }
}
