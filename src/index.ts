// gguf-vram as a package: `import { load, readGguf } from "gguf-vram"`.
// One line per part of the library; a part is added here with one more line.

// The loader: load(), Loader, LoadError, ModelFile, planLoad, verifyModel, …
export * from "./load/index.ts";
// The GGUF format: readGguf(), readModelFiles(), GgufFile, GgufError, GgmlType, …
export * from "./gguf/index.ts";
// The model registry's verdict on a file: checkModel() and its problems.
export { checkModel, FAMILY_LIST, type ModelCheck, type ModelProblem, type ModelProblemCode } from "./arch/index.ts";
// What a loaded model reports: its VRAM ledger, the GPUs it is on, the CUDA error behind a LoadError.
export { VramLedger, CudaError, type DeviceInfo, type LedgerEntry, type CudaErrorCode } from "./cuda/index.ts";
// Resident models: a client of `gguf-vram serve` (load, list, attach from another process), and the server itself.
export { connect, attach, ServeClient, Attachment, type ConnectOptions, type ServeLoadOptions } from "./serve/client.ts";
export { ResidentServer, type ServerOptions, type ServerEvent } from "./serve/server.ts";
export { ServeError, type ServeErrorCode } from "./serve/errors.ts";
export { defaultSocketPath } from "./serve/socket-path.ts";
export type { ModelInfo } from "./serve/protocol.ts";
// The native library, built on first use into the per-user cache; call it to build ahead of time.
export { ensureNativeLibrary, nativeCacheDir, NativeBuildError, type BuildOptions } from "../build.ts";
