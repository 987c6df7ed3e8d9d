// What `bun run load` says before a load: the plan, GPU by GPU when there are
// several, and whether it fits (load-summary.ts says what happened after;
// load-json.ts has the same facts as one JSON document).

import type { ModelCheck } from "../arch/index.ts";
import { layerOf } from "../arch/index.ts";
import type { DeviceInfo } from "../cuda/index.ts";
import type { GgufFile } from "../gguf/index.ts";
import type { DevicePlan, LoadPlan, ModelFile, Placement } from "../load/index.ts";
import { relative } from "node:path";
import { bold, dim, humanBytes, mib, table, thousands } from "./format.ts";

const MiB = 1024 * 1024;

export interface Planned {
  readonly path: string;
  readonly gguf: GgufFile;
  readonly check: ModelCheck;
  readonly plan: LoadPlan;
  /** Where the plan puts the model. */
  readonly placement: Placement;
  /** A split's proportions: given (--split), each GPU's free VRAM, or even (no GPU to ask). */
  readonly splitFrom?: "given" | "free VRAM" | "even";
  /** Open: the load reads through it. */
  readonly file: ModelFile;
}

/** "GPU 0", or "GPUs 0, 1". */
export function gpusText(devices: readonly number[]): string {
  return `GPU${devices.length === 1 ? "" : "s"} ${devices.join(", ")}`;
}

/** "layers 0–18 + output", "layer 2", "no layers + output". */
export function layersText(d: Pick<DevicePlan, "layers" | "tensors">): string {
  const output = d.tensors.some((t) => layerOf(t.name) === "output");
  const layers = !d.layers ? "no layers" : d.layers[0] === d.layers[1] ? `layer ${d.layers[0]}` : `layers ${d.layers[0]}–${d.layers[1]}`;
  return `${layers}${output ? " + output" : ""}`;
}

/** Tensors and bytes by type, the VRAM the plan needs, and for several GPUs what goes where. */
export function planLines(p: Planned, devices: readonly DeviceInfo[] | null = null): string[] {
  const c = p.check.config;
  const shards = p.gguf.shards.length;
  const out = [`${bold(relative(process.cwd(), p.path) || p.path)} ${dim(`(${humanBytes(p.gguf.fileSize)}${shards > 1 ? ` in ${shards} files` : ""})`)}`];
  if (c) {
    const experts = c.experts > 0 ? ` · ${c.experts} experts (${c.expertsUsed} per token)` : "";
    out.push(dim(`${c.architecture} · ${c.layers} layers · hidden ${c.hiddenSize} · ${c.heads} heads (${c.kvHeads} KV) · FFN ${c.ffnSize}${experts} · vocab ${thousands(c.vocabSize)}`));
  }
  if (p.file.unchecked) out.push(uncheckedLine(p));
  const types = p.gguf.totalsByType();
  const rows = types.map((t) => [t.name, String(t.count), thousands(t.bytes), (t.bytes / MiB).toFixed(1)]);
  const fileBytes = types.reduce((n, t) => n + t.bytes, 0); // the file's tensors once, however many GPUs hold them
  rows.push(["all", String(p.gguf.tensors.length), thousands(fileBytes), (fileBytes / MiB).toFixed(1)]);
  out.push(table([[dim("type"), dim("tensors"), dim("bytes"), dim("MiB")], ...rows], [1, 2, 3], ""));
  out.push(...placementLines(p, devices));
  out.push(headLine(p.plan));
  return out;
}

function placementLines(p: Planned, devices: readonly DeviceInfo[] | null): string[] {
  const { plan, placement } = p;
  const l = plan.ledger;
  const bytes = `${thousands(l.dataBytes)} B of tensors + ${thousands(l.paddingBytes)} B of padding`;
  if (placement.kind === "single") return [`VRAM needed: ${bold(mib(l.totalBytes))}, one allocation (${bytes})`];
  const n = plan.devices.length;
  const used = plan.devices.map((d) => d.device);
  const out: string[] = [];
  if (placement.kind === "replicas") {
    const one = plan.devices[0]!.ledger;
    out.push(`VRAM needed: ${bold(mib(l.totalBytes))}: ${mib(one.totalBytes)} on each of ${n} GPUs (${thousands(one.dataBytes)} B of tensors + ${thousands(one.paddingBytes)} B of padding each)`);
    out.push(`a whole copy on each of ${n} GPUs (${used.join(", ")}):`);
  } else {
    out.push(`VRAM needed: ${bold(mib(l.totalBytes))} in ${n} allocations, one per GPU (${bytes})`);
    out.push(`split by layers across ${gpusText(used)}, as llama.cpp splits them, ${splitWording(p)}:`);
  }
  const named = devices !== null && plan.devices.every((d) => devices[d.device]);
  const gpu = (i: number) => (named ? [`GPU ${i}`, devices[i]!.name] : [`GPU ${i}`]);
  const rows = plan.devices.map((d) => [...gpu(d.device), layersText(d), `${d.tensors.length} tensors`, mib(d.arenaBytes)]);
  out.push(table(rows, named ? [3, 4] : [2, 3]));
  const copied = copiedNames(plan);
  if (copied.length > 0) out.push(dim(`${copied.join(", ")}: a copy on each GPU that holds layers (every layer reads ${copied.length === 1 ? "it" : "them"})`));
  return out;
}

function splitWording(p: Planned): string {
  const split = p.placement.kind === "split" ? p.placement.split : [];
  if (p.splitFrom === "free VRAM") return `in proportion to free VRAM (${split.map(humanBytes).join(" : ")})`;
  if (p.splitFrom === "even") return "evenly (no GPU here to ask for free VRAM, which a real load splits by)";
  return `in proportions ${split.join(":")} (--split)`;
}

/** Tensors a split puts on more than one GPU (RoPE factors), not counting a tied head's copy. */
function copiedNames(plan: LoadPlan): string[] {
  if (plan.kind !== "split") return [];
  const count = new Map<string, number>();
  for (const t of plan.tensors) if (!t.copyOf) count.set(t.name, (count.get(t.name) ?? 0) + 1);
  return [...count].filter(([, n]) => n > 1).map(([name]) => name);
}

function headLine(plan: LoadPlan): string {
  const copy = plan.tensors.find((t) => t.copyOf);
  if (copy) {
    const from = plan.tensors.find((t) => t.name === copy.copyOf)!;
    return `LM head: tied — output.weight on GPU ${copy.device} is a copy of ${copy.copyOf} (on GPU ${from.device}), since the output layer is on another GPU`;
  }
  return plan.tiedHead ? "LM head: tied — output.weight is token_embd.weight's memory" : "LM head: output.weight, a tensor of its own";
}

/**
 * Whether `needed` bytes fit in `d`'s free memory. `what` names the bytes when
 * they are one GPU's share ("its part", "its copy").
 */
export function fitsLine(d: DeviceInfo, needed: number, what?: string): string {
  const fits = needed <= d.freeBytes;
  const verdict = what ? `${what} ${fits ? `fits (${humanBytes(needed)})` : `does not fit (needs ${humanBytes(needed)})`}` : fits ? "fits" : `does not fit (needs ${humanBytes(needed)})`;
  return `${d.index}: ${d.name} — ${humanBytes(d.freeBytes)} free of ${humanBytes(d.totalBytes)} · ${verdict}`;
}

/**
 * The fit check, one line per GPU: for one GPU, each of `devices` (`all`, a
 * dry run: which could take it) or the chosen one; for several, each GPU's
 * part or copy against that GPU's free memory.
 */
export function fitLines(p: Planned, devices: readonly DeviceInfo[], all = false): string[] {
  const placement = p.placement;
  if (placement.kind === "single") {
    const shown = all ? devices : devices.filter((d) => d.index === placement.device);
    return shown.map((d) => fitsLine(d, p.plan.arenaBytes));
  }
  const what = placement.kind === "split" ? "its part" : "its copy";
  return p.plan.devices.flatMap((part) => {
    const d = devices[part.device];
    return d ? [fitsLine(d, part.arenaBytes, what)] : [];
  });
}

/** What --unchecked loads without: the registry's first objection. */
export function uncheckedLine(p: { check: Planned["check"] }): string {
  const first = p.check.problems[0]?.message ?? "";
  return `layout not checked (--unchecked): ${first}${p.check.problems.length > 1 ? ` (and ${p.check.problems.length - 1} more)` : ""}; every tensor is loaded as the file has it`;
}
