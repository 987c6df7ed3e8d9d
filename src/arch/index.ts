// The model registry: architectures, their configs and tensor tables.
export { checkModel, allowedTypes, type ModelCheck, type CheckedFile } from "./check.ts";
export { readConfig, type ModelConfig, type BaseConfig, MAX_LAYERS, MAX_EXPERTS } from "./config.ts";
export { FAMILIES, FAMILY_LIST, type ArchFamily } from "./families/index.ts";
export { layerOf, roleOf, type ExpectedTensor, type ExpectedDim, type TensorRole } from "./tensors.ts";
export type { ModelProblem, ModelProblemCode } from "./problems.ts";
