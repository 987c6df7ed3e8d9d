// The GGUF format: read, write, describe.
export { readGguf, DEFAULT_ALIGNMENT, type ReadOptions, type OpenFile } from "./reader.ts";
export { GgufFile, type GgufTensorInfo, type ShardInfo, type TypeTotal } from "./gguf-file.ts";
export { splitName, shardPath, splitCount, mergeShards, readModelFiles, missingShard, SPLIT_KEYS, type SplitName } from "./split.ts";
export { GgufError, GGUF_ERROR_CODES, type GgufErrorCode } from "./errors.ts";
export { HEADER_LIMITS, type HeaderLimits } from "./limits.ts";
export { GgmlType, GGML_TYPES, REMOVED_GGML_TYPES, ggmlTraits, ggmlTypeName } from "./ggml-types.ts";
export { GgufValueType, StringArray, describeValue, shortestF32, type GgufValue, type GgufArray, type GgufScalar, type ValueTypeName, type ScalarTypeName } from "./values.ts";
