// Reading one tensor-info record: name, dimensions (ggml "ne" order), type and
// offset. Dimensions are bigints until their product is proven to fit.

import type { Cursor } from "./cursor.ts";
import { corrupt } from "./errors.ts";
import { GGML_TYPES, REMOVED_GGML_TYPES, type GgmlType } from "./ggml-types.ts";
import { readName } from "./metadata-reader.ts";

/** ggml's GGML_MAX_DIMS. */
export const MAX_DIMS = 4;
/** ggml's GGML_MAX_NAME is 64 including the terminating zero. */
export const MAX_TENSOR_NAME_BYTES = 63;

const INT64_MAX = (1n << 63n) - 1n;

export interface RawTensorInfo {
  readonly name: string;
  readonly type: GgmlType;
  readonly shape: readonly number[];
  readonly elements: number;
  /** Offset relative to the start of the data section, as stored. */
  readonly relativeOffset: bigint;
  /** Bytes of data; may exceed the file (checked against the layout later). */
  readonly bytes: bigint;
  /** Where this record starts in the file. */
  readonly infoOffset: number;
}

export function readTensorInfo(c: Cursor, index: number): RawTensorInfo {
  const infoOffset = c.pos;
  const name = readName(c, `the name of tensor ${index}`, MAX_TENSOR_NAME_BYTES);
  const what = `tensor ${name}`;

  const dimsAt = c.pos;
  const nDims = c.u32(`the dimension count of ${what}`);
  if (nDims < 1 || nDims > MAX_DIMS) {
    throw corrupt("BAD_DIMENSIONS", `${what} has ${nDims} dimensions; ggml tensors have 1 to ${MAX_DIMS}`, dimsAt);
  }
  const dims: bigint[] = [];
  for (let d = 0; d < nDims; d++) {
    const at = c.pos;
    const ne = c.size(`dimension ${d} of ${what}`);
    if (ne === 0n || ne > INT64_MAX) {
      throw corrupt("BAD_DIMENSIONS", `dimension ${d} of ${what} is ${ne}; a dimension is 1 to 2^63-1`, at);
    }
    dims.push(ne);
  }

  const typeAt = c.pos;
  const typeId = c.u32(`the type of ${what}`);
  const traits = GGML_TYPES.get(typeId);
  if (!traits) {
    const removed = REMOVED_GGML_TYPES.get(typeId);
    if (removed) {
      throw corrupt("REMOVED_TENSOR_TYPE", `${what} has type ${removed} (${typeId}), which ggml has removed`, typeAt, "re-quantize the model with a current llama.cpp");
    }
    throw corrupt("BAD_TENSOR_TYPE", `${what} has ggml type ${typeId}, which is not a known type`, typeAt, "the file is corrupt, or uses a type newer than this tool knows");
  }
  const relativeOffset = c.u64(`the offset of ${what}`);

  // ggml's own overflow rule: the element count must fit in an int64.
  let elements = 1n;
  for (const ne of dims) {
    elements *= ne;
    if (elements > INT64_MAX) {
      throw corrupt("DIMENSION_OVERFLOW", `${what} has shape [${dims.join(", ")}], whose element count overflows int64`, dimsAt);
    }
  }
  const ne0 = dims[0]!;
  const block = BigInt(traits.blockSize);
  if (ne0 % block !== 0n) {
    throw corrupt("PARTIAL_BLOCK", `${what} has rows of ${ne0} elements, not a whole number of ${traits.name} blocks of ${block}`, dimsAt);
  }
  const bytes = (elements / block) * BigInt(traits.typeSize);
  // Whether `bytes` fit in the file is checked once the whole header is read
  // (reader.ts, place()): a header cut short must say TRUNCATED, not that a
  // tensor is too big for what is left. Until then the numbers may be inexact;
  // a tensor that passes that check has every count below 256 × the file size.
  return { name, type: typeId as GgmlType, shape: dims.map(Number), elements: Number(elements), relativeOffset, bytes, infoOffset };
}
