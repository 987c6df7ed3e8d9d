// One error type for everything wrong with a GGUF file's bytes. Each carries a
// stable code (tests and scripts match on it), the byte offset where the problem
// was found, a one-sentence message and a hint saying what to do next.

export const GGUF_ERROR_CODES = [
  "NOT_GGUF", // the magic is not "GGUF"
  "BIG_ENDIAN", // a byte-swapped file
  "UNSUPPORTED_VERSION",
  "TRUNCATED", // the file ends inside the header
  "COUNT_TOO_LARGE", // tensor or key count cannot fit in the file
  "STRING_TOO_LONG",
  "ARRAY_TOO_LONG",
  "ARRAY_TOO_DEEP", // arrays nested deeper than the reader's bound (limits.ts)
  "VALUE_TOO_LARGE", // one metadata value larger than the reader's bound (limits.ts)
  "HEADER_TOO_LARGE", // the header's bytes and the memory they take, past the reader's bound (limits.ts)
  "BAD_VALUE_TYPE",
  "BAD_BOOL",
  "BAD_UTF8",
  "EMPTY_KEY",
  "DUPLICATE_KEY",
  "BAD_ALIGNMENT",
  "NAME_TOO_LONG",
  "DUPLICATE_TENSOR",
  "BAD_DIMENSIONS", // wrong dimension count, or a dimension of zero or beyond int64
  "DIMENSION_OVERFLOW", // the element or byte count overflows
  "BAD_TENSOR_TYPE", // unknown ggml type id
  "REMOVED_TENSOR_TYPE", // an id ggml has removed
  "PARTIAL_BLOCK", // a row is not a whole number of blocks
  "MISALIGNED_TENSOR",
  "TENSOR_OUT_OF_FILE",
  "OVERLAPPING_TENSORS",
  "SPLIT_MISSING_SHARD", // a file of a split set (NAME-0000k-of-0000n.gguf) is absent
  "BAD_SPLIT", // a split set whose shards disagree: numbering, counts, a tensor in two shards
  "FILE_NOT_FOUND",
  "IS_A_DIRECTORY",
  "NOT_READABLE",
] as const;

export type GgufErrorCode = (typeof GGUF_ERROR_CODES)[number];

export class GgufError extends Error {
  override readonly name = "GgufError";
  /** The file's path, when it was read from one. */
  file: string | null = null;

  constructor(
    readonly code: GgufErrorCode,
    /** The sentence: what is wrong, and where. */
    readonly problem: string,
    /** Byte offset in the file where the problem was found (-1 when not about a position). */
    readonly offset: number,
    /** What the user can do about it. */
    readonly hint: string,
  ) {
    super(offset >= 0 ? `${problem} (at byte ${offset})` : problem);
  }
}

const CORRUPT_HINT = "the file is corrupt or was not written by a GGUF writer; download or convert it again";

export function corrupt(code: GgufErrorCode, problem: string, offset: number, hint = CORRUPT_HINT): GgufError {
  return new GgufError(code, problem, offset, hint);
}
