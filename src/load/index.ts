// Loading a GGUF model into VRAM.
export { load, loadModel, Loader } from "./loader.ts";
export { defaultTuning, type LoadOptions, type LoaderOptions, type LoaderLoadOptions, type PlacementOptions, type ModelOptions, type LoadCallbacks, type DeviceProgress, type LoadPhase, type UploadTuning } from "./options.ts";
export type { LoadReport, LoadTimings, DeviceVram } from "./report.ts";
export { Model, DeviceTensor, type ModelSource, type SourceFile, type ModelPart, type TensorPlacement } from "./model.ts";
export { LoadError, toLoadError, type LoadErrorCode } from "./errors.ts";
export { planLoad, uploadSpans, ARENA_ALIGNMENT, type LoadPlan, type DevicePlan, type PlannedTensor, type UploadSpan } from "./plan.ts";
export { layerAssignment, splitTensors, type Placement } from "./placement.ts";
export type { ReplicaRoute } from "./replicas.ts";
export { verifyModel, type VerifyReport } from "./verify.ts";
export { ModelFile } from "./model-file.ts";
