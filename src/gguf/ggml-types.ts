// The ggml tensor types, numbered exactly as ggml's `enum ggml_type`.
// One table gives each type's block size (elements per block) and bytes per
// block; every tensor size in this project derives from it.

export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  // 4 (Q4_2) and 5 (Q4_3) were removed from ggml.
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  // 31–33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) were removed from GGUF files.
  TQ1_0 = 34,
  TQ2_0 = 35,
  // 36–38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) were removed from GGUF files.
  MXFP4 = 39,
}

export interface GgmlTypeTraits {
  readonly name: string;
  /** Elements per block. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
  /** Whether a weight matrix may be stored in this type (false for integer and scratch types). */
  readonly weight: boolean;
}

const QK_K = 256;

function traits(name: string, blockSize: number, typeSize: number, weight = true): GgmlTypeTraits {
  return { name, blockSize, typeSize, weight };
}

// Byte counts follow the block structs of ggml-common.h.
export const GGML_TYPES: ReadonlyMap<GgmlType, GgmlTypeTraits> = new Map([
  [GgmlType.F32, traits("F32", 1, 4)],
  [GgmlType.F16, traits("F16", 1, 2)],
  [GgmlType.Q4_0, traits("Q4_0", 32, 2 + 16)],
  [GgmlType.Q4_1, traits("Q4_1", 32, 2 + 2 + 16)],
  [GgmlType.Q5_0, traits("Q5_0", 32, 2 + 4 + 16)],
  [GgmlType.Q5_1, traits("Q5_1", 32, 2 + 2 + 4 + 16)],
  [GgmlType.Q8_0, traits("Q8_0", 32, 2 + 32)],
  [GgmlType.Q8_1, traits("Q8_1", 32, 2 + 2 + 32, false)],
  [GgmlType.Q2_K, traits("Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2)],
  [GgmlType.Q3_K, traits("Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2)],
  [GgmlType.Q4_K, traits("Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2)],
  [GgmlType.Q5_K, traits("Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2)],
  [GgmlType.Q6_K, traits("Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2)],
  [GgmlType.Q8_K, traits("Q8_K", QK_K, 4 + QK_K + QK_K / 8, false)],
  [GgmlType.IQ2_XXS, traits("IQ2_XXS", QK_K, 2 + QK_K / 4)],
  [GgmlType.IQ2_XS, traits("IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32)],
  [GgmlType.IQ3_XXS, traits("IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8)],
  [GgmlType.IQ1_S, traits("IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16)],
  [GgmlType.IQ4_NL, traits("IQ4_NL", 32, 2 + 16)],
  [GgmlType.IQ3_S, traits("IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4)],
  [GgmlType.IQ2_S, traits("IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16)],
  [GgmlType.IQ4_XS, traits("IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64)],
  [GgmlType.I8, traits("I8", 1, 1, false)],
  [GgmlType.I16, traits("I16", 1, 2, false)],
  [GgmlType.I32, traits("I32", 1, 4, false)],
  [GgmlType.I64, traits("I64", 1, 8, false)],
  [GgmlType.F64, traits("F64", 1, 8, false)],
  [GgmlType.IQ1_M, traits("IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32)],
  [GgmlType.BF16, traits("BF16", 1, 2)],
  [GgmlType.TQ1_0, traits("TQ1_0", QK_K, 2 + 4 * 13)],
  [GgmlType.TQ2_0, traits("TQ2_0", QK_K, 2 + QK_K / 4)],
  [GgmlType.MXFP4, traits("MXFP4", 32, 1 + 16)],
]);

/** Ids ggml once used and has since removed; a file that holds one is refused by name. */
export const REMOVED_GGML_TYPES: ReadonlyMap<number, string> = new Map([
  [4, "Q4_2"],
  [5, "Q4_3"],
  [31, "Q4_0_4_4"],
  [32, "Q4_0_4_8"],
  [33, "Q4_0_8_8"],
  [36, "IQ4_NL_4_4"],
  [37, "IQ4_NL_4_8"],
  [38, "IQ4_NL_8_8"],
]);

export function ggmlTraits(type: GgmlType): GgmlTypeTraits {
  const t = GGML_TYPES.get(type);
  if (!t) throw new Error(`not a ggml type: ${type}`);
  return t;
}

export function ggmlTypeName(type: GgmlType): string {
  return ggmlTraits(type).name;
}
