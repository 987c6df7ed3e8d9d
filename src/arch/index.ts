// The model registry: architectures, their configs and tensor tables.
export { checkModel, allowedTypes, type ModelCheck } from "./check.ts";
export { ModelConfig, readConfig } from "./config.ts";
export { FAMILIES, type ArchFamily, type ExpectedTensor, type ExpectedDim, type TensorRole } from "./families.ts";
export type { ModelProblem, ModelProblemCode } from "./problems.ts";
