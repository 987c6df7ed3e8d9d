// The GGUF format: read, write, describe.
export { readGguf, DEFAULT_ALIGNMENT, type ReadOptions } from "./reader.ts";
export { GgufFile, type GgufTensorInfo, type TypeTotal } from "./gguf-file.ts";
export { GgufError, GGUF_ERROR_CODES, type GgufErrorCode } from "./errors.ts";
export { GgmlType, GGML_TYPES, REMOVED_GGML_TYPES, ggmlTraits, ggmlTypeName } from "./ggml-types.ts";
export { GgufValueType, StringArray, describeValue, shortestF32, type GgufValue, type GgufArray, type GgufScalar, type ValueTypeName, type ScalarTypeName } from "./values.ts";
