// `bun run load --json`: the plan, the ledger, VRAM as CUDA and nvidia-smi
// see it, and the timings, as one document. The fields a single GPU had stay
// as they were; several GPUs add their own, device by device.

import type { DeviceInfo } from "../cuda/index.ts";
import { ggmlTypeName } from "../gguf/index.ts";
import type { LoadPlan, LoadReport, Placement } from "../load/index.ts";
import type { LoadedModel } from "./backend.ts";
import type { Planned } from "./load-report.ts";
import { smiSum } from "./load-summary.ts";

export interface DeviceJson {
  index: number;
  name: string;
  computeCapability: string;
  totalBytes: number;
  freeBytes: number;
}

export interface LoadJson {
  model: {
    path: string;
    fileSize: number;
    architecture: string | null;
    config: Record<string, unknown> | null;
    tensors: number;
    tiedHead: boolean;
    /** False when loaded with --unchecked despite the registry's problems (listed). */
    checked: boolean;
    problems: string[];
    /** Every file of the model (one unless it is a split set). */
    shards: { path: string; fileSize: number; tensors: number }[];
  };
  /** The first (or only) GPU the model goes to; null when no GPU was asked (a dry run without one). */
  device: DeviceJson | null;
  /** Every GPU the model goes to, in order, when there are several. */
  devices?: DeviceJson[];
  plan: {
    kind: Placement["kind"];
    /** A split's proportions, one per device (given, each device's free VRAM, or even); null otherwise. */
    split: number[] | null;
    /** One entry per device; see devicesJson for how tensors are counted. */
    devices: { device: number; layers: [number, number] | null; tensors: number; arenaBytes: number }[];
    arenaBytes: number;
    dataBytes: number;
    paddingBytes: number;
    byType: { type: string; count: number; bytes: number }[];
    tensors: { name: string; type: string; shape: number[]; bytes: number; shard: number; fileOffset: number; device: number; offset: number; aliasOf?: string; copyOf?: string }[];
  };
  dryRun: boolean;
  /** How the bytes reached the GPUs: "pcie" (each over its own link), or for replicas "peer" or "host"; null on a dry run. */
  route: LoadReport["route"] | null;
  ledger: { totalBytes: number; dataBytes: number; paddingBytes: number } | null;
  vram: {
    ledgerBytes: number;
    cudaMemGetInfoDropBytes: number;
    /** Every device the model is on, together. */
    nvidiaSmiBytes: number | null;
    freeBytesAfter: number;
    totalBytes: number;
    devices: { device: number; ledgerBytes: number; cudaMemGetInfoDropBytes: number; nvidiaSmiBytes: number | null; freeBytesAfter: number; totalBytes: number }[];
  } | null;
  timings: LoadReport["timings"] | null;
  verified: boolean;
}

/**
 * The plan's devices. Their tensors add up to the model's count as Model counts
 * them, each name once: a name goes to the first device (in the split's order)
 * that holds it, so RoPE factors a split copies onto every device count on the
 * first, and a tied head's alias or copy, which only the output layer's device
 * holds, counts there. Replicas are each the whole model. Arena bytes add up to
 * plan.arenaBytes. (test/cli-multi.test.ts checks both sums on a split with a
 * tied head and RoPE factors on both GPUs.)
 */
export function devicesJson(plan: LoadPlan): LoadJson["plan"]["devices"] {
  const seen = new Set<string>();
  return plan.devices.map((d) => {
    const names = d.tensors.map((t) => t.name);
    const tensors = plan.kind === "replicas" ? new Set(names).size : names.filter((n) => !seen.has(n) && seen.add(n)).length;
    return { device: d.device, layers: d.layers ? [d.layers[0], d.layers[1]] : null, tensors, arenaBytes: d.arenaBytes };
  });
}

function deviceJson(d: DeviceInfo): DeviceJson {
  return { index: d.index, name: d.name, computeCapability: d.computeCapability, totalBytes: d.totalBytes, freeBytes: d.freeBytes };
}

/** `used`: the facts of the GPUs the plan puts the model on, in its order (empty when unknown). */
export function loadJson(p: Planned, used: readonly DeviceInfo[], loaded: LoadedModel | null, smi: ReadonlyMap<number, number> | null, verified: boolean): LoadJson {
  const r = loaded?.report;
  return {
    model: {
      path: p.path,
      fileSize: p.gguf.fileSize,
      architecture: p.check.architecture,
      config: p.check.config ? { ...p.check.config } : null,
      tensors: p.gguf.tensors.length,
      tiedHead: p.plan.tiedHead,
      checked: p.check.ok,
      problems: p.check.problems.map((x) => x.message),
      shards: p.gguf.shards.map((s) => ({ path: s.path ?? p.path, fileSize: s.fileSize, tensors: s.tensorCount })),
    },
    device: used[0] ? deviceJson(used[0]) : null,
    ...(used.length > 1 ? { devices: used.map(deviceJson) } : {}),
    plan: {
      kind: p.plan.kind,
      split: p.placement.kind === "split" ? [...p.placement.split] : null,
      devices: devicesJson(p.plan),
      arenaBytes: p.plan.arenaBytes,
      dataBytes: p.plan.ledger.dataBytes,
      paddingBytes: p.plan.ledger.paddingBytes,
      byType: p.gguf.totalsByType().map((t) => ({ type: t.name, count: t.count, bytes: t.bytes })),
      tensors: p.plan.tensors.map((t) => ({
        name: t.name, type: ggmlTypeName(t.type), shape: [...t.shape], bytes: t.bytes, shard: t.shard, fileOffset: t.fileOffset, device: t.device, offset: t.offset,
        ...(t.aliasOf ? { aliasOf: t.aliasOf } : {}),
        ...(t.copyOf ? { copyOf: t.copyOf } : {}),
      })),
    },
    dryRun: loaded === null,
    route: r ? r.route : null,
    ledger: loaded ? { totalBytes: loaded.ledger.totalBytes, dataBytes: loaded.ledger.dataBytes, paddingBytes: loaded.ledger.paddingBytes } : null,
    vram: loaded && r ? vramJson(loaded, smi) : null,
    timings: r ? r.timings : null,
    verified,
  };
}

function vramJson(loaded: LoadedModel, smi: ReadonlyMap<number, number> | null): NonNullable<LoadJson["vram"]> {
  const r = loaded.report;
  const devices = r.vram.map((v) => ({
    device: v.device,
    ledgerBytes: loaded.devices.find((d) => d.device === v.device)?.ledger.totalBytes ?? 0,
    cudaMemGetInfoDropBytes: v.freeBefore - v.freeAfter,
    nvidiaSmiBytes: smi?.get(v.device) ?? null,
    freeBytesAfter: v.freeAfter,
    totalBytes: v.totalVram,
  }));
  return {
    ledgerBytes: loaded.ledger.totalBytes,
    cudaMemGetInfoDropBytes: r.freeBefore - r.freeAfter,
    nvidiaSmiBytes: smiSum(smi, r.vram.map((v) => v.device)),
    freeBytesAfter: r.freeAfter,
    totalBytes: r.totalVram,
    devices,
  };
}
