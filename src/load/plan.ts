// The plan of a load, made before any GPU memory is touched: which device
// holds each tensor (placement.ts), where it goes in that device's arena, how
// big each arena is, and the byte spans the upload reads.

import type { ModelCheck } from "../arch/index.ts";
import type { LedgerEntry } from "../cuda/ledger.ts";
import { VramLedger } from "../cuda/ledger.ts";
import type { GgmlType, GgufFile } from "../gguf/index.ts";
import { layerAssignment, layerCount, placementDevices, splitTensors, type Placement } from "./placement.ts";

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
  /** The CUDA device whose arena holds it, and where. */
  readonly device: number;
  readonly offset: number;
  /** A tied head on token_embd's device: the same memory under a second name. */
  readonly aliasOf?: string;
  /** A tied head on another device: a copy of that tensor's file bytes. */
  readonly copyOf?: string;
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

/** One device's part: its arena and what is in it. */
export interface DevicePlan {
  readonly device: number;
  /** The blocks it holds, first and last (a split), every one (replicas), or null (none). */
  readonly layers: readonly [number, number] | null;
  /** In arena order; an alias last. */
  readonly tensors: readonly PlannedTensor[];
  readonly ledger: VramLedger;
  readonly arenaBytes: number;
  /** Tensor bytes that land in this arena. */
  readonly uploadBytes: number;
}

export interface LoadPlan {
  readonly kind: Placement["kind"];
  readonly devices: readonly DevicePlan[];
  /** Every device's tensors, device by device (a replica's tensors once per device). */
  readonly tensors: readonly PlannedTensor[];
  /** One device's ledger, or every device's entries in one (its totals are the sums). */
  readonly ledger: VramLedger;
  /** VRAM of every arena together. */
  readonly arenaBytes: number;
  /** Tensor bytes that land in VRAM, every device together. */
  readonly uploadBytes: number;
  readonly tiedHead: boolean;
  /** The block count the layers were assigned by. */
  readonly layers: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** Lays `tensors` (in file order) out in one arena on `device`; `aliasOf` entries add a name, not bytes. */
function arena(device: number, tensors: readonly Omit<PlannedTensor, "offset" | "device">[], layers: DevicePlan["layers"]): DevicePlan {
  const placed: PlannedTensor[] = [];
  const byName = new Map<string, PlannedTensor>();
  let next = 0;
  for (const t of tensors) {
    if (t.aliasOf) continue;
    const p = { ...t, device, offset: next };
    placed.push(p);
    byName.set(p.name, p);
    next = alignUp(next + t.bytes, ARENA_ALIGNMENT);
  }
  const arenaBytes = Math.max(next, ARENA_ALIGNMENT);
  const entries: LedgerEntry[] = placed.map((t, i) => ({
    name: t.name,
    device,
    offset: t.offset,
    bytes: t.bytes,
    padding: (placed[i + 1]?.offset ?? arenaBytes) - t.offset - t.bytes,
    ...(t.copyOf ? { copyOf: t.copyOf } : {}),
  }));
  const uploadBytes = placed.reduce((n, t) => n + t.bytes, 0);
  for (const t of tensors) {
    if (!t.aliasOf) continue;
    const target = byName.get(t.aliasOf)!;
    placed.push({ ...target, name: t.name, aliasOf: target.name });
    entries.push({ name: t.name, device, offset: target.offset, bytes: 0, padding: 0, aliasOf: target.name });
  }
  return { device, layers, tensors: placed, ledger: new VramLedger(entries, arenaBytes, ARENA_ALIGNMENT), arenaBytes, uploadBytes };
}

/**
 * The plan for `placement` (default: everything on device 0). A tied LM head is
 * token_embd's memory under a second name, or a copy of it on the output layer's
 * device when a split puts that elsewhere. (A model loaded unchecked is loaded as
 * it is: its tensors, nothing inferred.)
 */
export function planLoad(gguf: GgufFile, check: ModelCheck, placement: Placement = { kind: "single", device: 0 }): LoadPlan {
  const inFileOrder = [...gguf.tensors].sort((a, b) => a.shard - b.shard || a.offset - b.offset);
  const fileTensors = inFileOrder.map((t) => ({ name: t.name, type: t.type, shape: t.shape, bytes: t.bytes, shard: t.shard, fileOffset: t.offset }));
  const tiedHead = check.ok && check.tiedHead && fileTensors.some((t) => t.name === "token_embd.weight");
  const embd = fileTensors.find((t) => t.name === "token_embd.weight");
  const names = fileTensors.map((t) => t.name);
  const nLayer = layerCount(names, check.config?.layers);
  const all: DevicePlan["layers"] = nLayer > 0 ? [0, nLayer - 1] : null;
  const head = (how: "alias" | "copy") => ({ ...embd!, name: "output.weight", ...(how === "alias" ? { aliasOf: embd!.name } : { copyOf: embd!.name }) });

  let devices: DevicePlan[];
  if (placement.kind !== "split") {
    const whole = tiedHead ? [...fileTensors, head("alias")] : fileTensors;
    devices = placementDevices(placement).map((d) => arena(d, whole, all));
  } else {
    const assignment = layerAssignment(nLayer, placement.split);
    const where = splitTensors(names, nLayer, assignment);
    devices = placement.devices.map((device, i) => {
      const mine = fileTensors.filter((t) => where.get(t.name)!.includes(i));
      if (tiedHead && assignment[nLayer] === i) mine.push(head(where.get("token_embd.weight")!.includes(i) ? "alias" : "copy"));
      const held = assignment.slice(0, nLayer).flatMap((d, il) => (d === i ? [il] : []));
      return arena(device, mine, held.length > 0 ? [held[0]!, held.at(-1)!] : null);
    });
  }
  const entries = devices.flatMap((d) => d.ledger.entries);
  const arenaBytes = devices.reduce((n, d) => n + d.arenaBytes, 0);
  return {
    kind: placement.kind,
    devices,
    tensors: devices.flatMap((d) => d.tensors),
    ledger: devices.length === 1 ? devices[0]!.ledger : new VramLedger(entries, arenaBytes, ARENA_ALIGNMENT),
    arenaBytes,
    uploadBytes: devices.reduce((n, d) => n + d.uploadBytes, 0),
    tiedHead,
    layers: nLayer,
  };
}

/** File gaps up to this size are read along with their neighbours rather than starting a new span. */
const MAX_GAP = 64 * 1024;

/** Cut one arena's tensors (in file order) into spans of at most `slotBytes`. */
export function uploadSpans(part: { readonly tensors: readonly PlannedTensor[] }, slotBytes: number): UploadSpan[] {
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
  for (const t of part.tensors) {
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
