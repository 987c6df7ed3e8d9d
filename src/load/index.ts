// Loading a GGUF model into VRAM.
export { load, loadModel, Loader, defaultTuning, type LoadOptions, type LoadReport, type DeviceProgress, type DeviceVram, type LoadTimings, type LoadPhase, type UploadTuning } from "./load.ts";
export { LoadError, toLoadError, type LoadErrorCode } from "./errors.ts";
export { planLoad, uploadSpans, ARENA_ALIGNMENT, type LoadPlan, type DevicePlan, type PlannedTensor, type UploadSpan } from "./plan.ts";
export { layerAssignment, splitTensors, type Placement } from "./placement.ts";
export type { ReplicaRoute } from "./replicas.ts";
export { verifyModel, type VerifyReport } from "./verify.ts";
export { ModelFile } from "./model-file.ts";
