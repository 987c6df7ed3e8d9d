// What `bun run load` says during and after a load: the progress line, then
// where the VRAM went (the ledger, cudaMemGetInfo, nvidia-smi), GPU by GPU when
// there are several, and how long each step took.

import type { DeviceProgress, LoadPlan } from "../load/index.ts";
import type { LoadedModel } from "./backend.ts";
import { bold, dim, gbps, humanBytes, mib, ms, table, thousands } from "./format.ts";
import { gpusText, layersText, uncheckedLine } from "./load-report.ts";

/** "uploading 9.1 GiB of 14.6 GiB (62%) · 98.2 GB/s", then " · GPU0 64% GPU1 60%" when there are several. */
export function progressText(done: number, total: number, devices: readonly DeviceProgress[], seconds: number): string {
  return `uploading ${humanBytes(done)} of ${humanBytes(total)} (${percent(done, total)}%) · ${(done / 1e9 / Math.max(seconds, 1e-3)).toFixed(1)} GB/s${perDeviceText(devices)}`;
}

/** " · GPU0 64% GPU1 60%" for several devices; "" for one (the total says it all). */
export function perDeviceText(devices: readonly DeviceProgress[]): string {
  return devices.length > 1 ? ` · ${devices.map((d) => `GPU${d.device} ${percent(d.done, d.total)}%`).join(" ")}` : "";
}

function percent(done: number, total: number): number {
  return total > 0 ? Math.floor((done / total) * 100) : 100;
}

/** Tensors with memory of their own (a tied head's alias is a name, not memory), each name once. */
function tensorsInVram(plan: LoadPlan, device?: number): number {
  return new Set(plan.tensors.filter((t) => !t.aliasOf && (device === undefined || t.device === device)).map((t) => t.name)).size;
}

/** After the load: where the VRAM went, as the ledger, CUDA and nvidia-smi each see it, and how long each step took. */
export function summaryLines(m: LoadedModel, smi: ReadonlyMap<number, number> | null, verified: boolean): string[] {
  const r = m.report;
  const t = r.timings;
  const plan = r.plan;
  const several = plan.devices.length > 1;
  const used = plan.devices.map((d) => d.device);
  const byType = r.gguf.totalsByType().map((x) => `${x.name} ${x.count}`).join(" · ");
  const where =
    !several ? `on GPU ${r.device}`
    : plan.kind === "replicas" ? `on each of ${gpusText(used)} (a whole copy on each)`
    : `across ${gpusText(used)}, split by layers,`;
  const count = plan.kind === "replicas" ? tensorsInVram(plan, used[0]) : tensorsInVram(plan);
  const out = [`${bold(String(count))} tensors in VRAM ${where} in ${bold(ms(t.total))}${verified ? " · verified: every tensor's VRAM equals the file" : ""}`, dim(`by type: ${byType}`), ""];
  out.push(...(several ? perDeviceVram(m, smi) : oneDeviceVram(m, smi?.get(r.device) ?? null)), "");
  // For replicas by the peer route the host sends one copy; the GPUs make the others.
  const fromHost = r.route === "peer" ? plan.devices[0]!.uploadBytes : plan.uploadBytes;
  const timeRows = [
    [dim("time"), ""],
    ["CUDA start", `${ms(t.cudaInit)}, overlapped with parsing (then waited ${ms(t.cudaWait)})`],
    ["parse + check", ms(t.parse)],
    ["allocate", ms(t.allocate)],
    ["upload", `${ms(t.upload)} (${gbps(fromHost, t.upload)}, ${r.workers} workers${several ? " per GPU" : ""})`],
  ];
  if (r.route === "peer") timeRows.push(["peer exchange", `${ms(t.peer)} (${gbps(fromHost * (used.length - 1), t.peer)}: each GPU's share copied to the others)`]);
  timeRows.push(["verify", verified ? ms(t.verify) : "—"]);
  out.push(table(timeRows, [], ""));
  if (plan.kind === "replicas") out.push("", routeLine(r.route));
  const head = tiedHeadLine(plan);
  if (head) out.push("", head);
  if (!r.check.ok) out.push("", uncheckedLine(r));
  for (const w of r.check.warnings) out.push(dim(`note: ${w}`));
  return out;
}

function oneDeviceVram(m: LoadedModel, smiBytes: number | null): string[] {
  const r = m.report;
  return [
    table([
      [dim("VRAM"), ""],
      ["the ledger", `${mib(m.ledger.totalBytes)}: ${thousands(m.ledger.dataBytes)} B of tensors + ${thousands(m.ledger.paddingBytes)} B of padding`],
      ["cudaMemGetInfo", `free fell by ${mib(r.freeBefore - r.freeAfter)} (${humanBytes(r.freeAfter)} of ${humanBytes(r.totalVram)} free now)`],
      ["nvidia-smi", smiText(smiBytes)],
    ], [], ""),
  ];
}

/** The ledger, cudaMemGetInfo and nvidia-smi on each GPU, then the totals. */
function perDeviceVram(m: LoadedModel, smi: ReadonlyMap<number, number> | null): string[] {
  const r = m.report;
  const out: string[] = [];
  for (const part of r.plan.devices) {
    const v = r.vram.find((x) => x.device === part.device);
    const ledger = m.devices.find((x) => x.device === part.device)?.ledger ?? part.ledger;
    out.push(
      table([
        [dim("VRAM"), dim(`GPU ${part.device} (${layersText(part)})`)],
        ["the ledger", `${mib(ledger.totalBytes)}: ${thousands(ledger.dataBytes)} B of tensors + ${thousands(ledger.paddingBytes)} B of padding`],
        ["cudaMemGetInfo", v ? `free fell by ${mib(v.freeBefore - v.freeAfter)} (${humanBytes(v.freeAfter)} of ${humanBytes(v.totalVram)} free now)` : "not measured"],
        ["nvidia-smi", smiText(smi?.get(part.device) ?? null)],
      ], [], ""),
      "",
    );
  }
  const smiTotal = smiSum(smi, r.plan.devices.map((d) => d.device));
  out.push(`in all: the ledger ${mib(m.ledger.totalBytes)} on ${r.plan.devices.length} GPUs · cudaMemGetInfo free fell by ${mib(r.freeBefore - r.freeAfter)} · nvidia-smi ${smiTotal === null ? "not available" : mib(smiTotal, 0)}`);
  return out;
}

function smiText(bytes: number | null): string {
  return bytes === null ? "not available" : `${mib(bytes, 0)} for this process (arena + CUDA context)`;
}

/** nvidia-smi's bytes for this process over `devices`; null when it listed none of them. */
export function smiSum(smi: ReadonlyMap<number, number> | null, devices: readonly number[]): number | null {
  const listed = devices.filter((d) => smi?.has(d));
  return listed.length === 0 ? null : listed.reduce((n, d) => n + smi!.get(d)!, 0);
}

function routeLine(route: LoadedModel["report"]["route"]): string {
  return route === "peer"
    ? "route: peer to peer (NVLink/PCIe P2P): each GPU uploaded a share of the file, then the GPUs copied their shares to each other"
    : "route: from the host: each GPU uploaded the whole model over its own link";
}

function tiedHeadLine(plan: LoadPlan): string | null {
  if (!plan.tiedHead) return null;
  const copy = plan.tensors.find((t) => t.copyOf);
  if (copy) return `output.weight is tied to token_embd.weight: a copy on GPU ${copy.device}, where the output layer is.`;
  return plan.kind === "replicas" ? "output.weight is tied to token_embd.weight: one copy in VRAM on each GPU, two names." : "output.weight is tied to token_embd.weight: one copy in VRAM, two names.";
}
