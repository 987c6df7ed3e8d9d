// The GPU: the only part of gguf-vram that talks to libgguf_vram (bun:ffi).
export { openCuda, openCudaAt, call, versions, liveResources, measureH2D, measureH2DMany, measureRead, pinHost, unpinHost, type LiveResources } from "./runtime.ts";
export { UploadShared, uploadStep, checksumFileStep, SCHEDULES, type Schedule, type StepResult } from "./upload.ts";
export { Device, deviceCount, deviceInfo, listDevices, memInfo, type DeviceInfo } from "./device.ts";
export { Arena, type ArenaOptions } from "./arena.ts";
export { IpcServer, IpcClient, closeFd, IPC_EVENT_BUFFER_BYTES, type IpcEvent, type IpcEventType, type IpcFrame } from "./ipc.ts";
export { enablePeerAccess, PeerCopy } from "./peer.ts";
export { Stager } from "./stager.ts";
export { hostChecksum, hostChecksumPartial, finishChecksum } from "./checksum.ts";
export { VramLedger, type LedgerEntry } from "./ledger.ts";
export { CudaError, type CudaErrorCode } from "./errors.ts";
export { nativePath } from "./native.ts";
