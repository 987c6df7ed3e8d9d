// The plan of a load, made before any GPU memory is touched: where each tensor
// goes in the arena, how big the arena is, and the byte spans the upload reads.

import type { ModelCheck } from "../arch/index.ts";
import type { LedgerEntry } from "../cuda/ledger.ts";
import { VramLedger } from "../cuda/ledger.ts";
import type { GgmlType, GgufFile } from "../gguf/index.ts";

/** Tensors start at multiples of this in the arena (what cudaMalloc itself guarantees). */
export const ARENA_ALIGNMENT = 256;

export interface PlannedTensor {
  readonly name: string;
  readonly type: GgmlType;
  readonly shape: readonly number[];
  readonly bytes: number;
  /** Which file of a split set holds the bytes (0 for a single file). */
  readonly shard: number;
  readonly fileOffset: number;
  readonly offset: number;
  readonly aliasOf?: string;
}

/**
 * One read: a contiguous file range that fits a staging slot, and the copies
 * out of it. `pieces` holds (offset in the span, arena offset, bytes) triples.
 */
export interface UploadSpan {
  readonly shard: number;
  readonly fileOffset: number;
  readonly bytes: number;
  readonly pieces: readonly number[];
}

export interface LoadPlan {
  readonly tensors: readonly PlannedTensor[];
  readonly ledger: VramLedger;
  readonly arenaBytes: number;
  /** Bytes read from the file and copied to VRAM (the tensors, not the gaps). */
  readonly uploadBytes: number;
  readonly tiedHead: boolean;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export function planLoad(gguf: GgufFile, check: ModelCheck): LoadPlan {
  const inFileOrder = [...gguf.tensors].sort((a, b) => a.shard - b.shard || a.offset - b.offset);
  const tensors: PlannedTensor[] = [];
  let next = 0;
  for (const t of inFileOrder) {
    tensors.push({ name: t.name, type: t.type, shape: t.shape, bytes: t.bytes, shard: t.shard, fileOffset: t.offset, offset: next });
    next = alignUp(next + t.bytes, ARENA_ALIGNMENT);
  }
  const arenaBytes = Math.max(next, ARENA_ALIGNMENT);
  const entries: LedgerEntry[] = tensors.map((t, i) => ({
    name: t.name,
    offset: t.offset,
    bytes: t.bytes,
    padding: (tensors[i + 1]?.offset ?? arenaBytes) - t.offset - t.bytes,
  }));
  const uploadBytes = tensors.reduce((n, t) => n + t.bytes, 0);

  // A tied LM head is token_embd's memory under a second name: no second copy. (A model
  // loaded unchecked is loaded as it is: its tensors, nothing inferred.)
  const embd = tensors.find((t) => t.name === "token_embd.weight");
  const tiedHead = check.ok && check.tiedHead;
  if (tiedHead && embd) {
    tensors.push({ ...embd, name: "output.weight", aliasOf: embd.name });
    entries.push({ name: "output.weight", offset: embd.offset, bytes: 0, padding: 0, aliasOf: embd.name });
  }
  return { tensors, ledger: new VramLedger(entries, arenaBytes, ARENA_ALIGNMENT), arenaBytes, uploadBytes, tiedHead };
}

/** File gaps up to this size are read along with their neighbours rather than starting a new span. */
const MAX_GAP = 64 * 1024;

/** Cut the tensors (in file order) into spans of at most `slotBytes`. */
export function uploadSpans(plan: LoadPlan, slotBytes: number): UploadSpan[] {
  const spans: UploadSpan[] = [];
  let shard = -1;
  let start = -1;
  let end = -1;
  let pieces: number[] = [];
  const flush = () => {
    if (start >= 0) spans.push({ shard, fileOffset: start, bytes: end - start, pieces });
    start = -1;
    pieces = [];
  };
  for (const t of plan.tensors) {
    if (t.aliasOf || t.bytes === 0) continue;
    let done = 0;
    while (done < t.bytes) {
      const at = t.fileOffset + done;
      const fits = start >= 0 && t.shard === shard && at >= end && at - end <= MAX_GAP && at - start < slotBytes;
      if (!fits) {
        flush();
        shard = t.shard;
        start = at;
        end = at;
      }
      const take = Math.min(t.bytes - done, slotBytes - (at - start));
      pieces.push(at - start, t.offset + done, take);
      end = at + take;
      done += take;
    }
  }
  flush();
  return spans;
}
