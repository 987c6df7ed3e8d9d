// What `bun run load` says: the plan before a load, the summary after, and the
// same facts as one JSON document.

import type { ModelCheck } from "../arch/index.ts";
import type { DeviceInfo } from "../cuda/index.ts";
import type { GgufFile } from "../gguf/index.ts";
import { ggmlTypeName } from "../gguf/index.ts";
import type { LoadPlan, LoadReport, ModelFile } from "../load/index.ts";
import type { LoadedModel } from "./backend.ts";
import { relative } from "node:path";
import { bold, dim, gbps, humanBytes, mib, ms, table, thousands } from "./format.ts";

const MiB = 1024 * 1024;

export interface Planned {
  readonly path: string;
  readonly gguf: GgufFile;
  readonly check: ModelCheck;
  readonly plan: LoadPlan;
  /** Open: the load reads through it. */
  readonly file: ModelFile;
}

/** Tensors and bytes by type, and the VRAM the plan needs. */
export function planLines(p: Planned): string[] {
  const c = p.check.config;
  const shards = p.gguf.shards.length;
  const out = [`${bold(relative(process.cwd(), p.path) || p.path)} ${dim(`(${humanBytes(p.gguf.fileSize)}${shards > 1 ? ` in ${shards} files` : ""})`)}`];
  if (c) {
    const experts = c.experts > 0 ? ` · ${c.experts} experts (${c.expertsUsed} per token)` : "";
    out.push(dim(`${c.architecture} · ${c.layers} layers · hidden ${c.hiddenSize} · ${c.heads} heads (${c.kvHeads} KV) · FFN ${c.ffnSize}${experts} · vocab ${thousands(c.vocabSize)}`));
  }
  if (p.file.unchecked) out.push(uncheckedLine(p));
  const rows = p.gguf.totalsByType().map((t) => [t.name, String(t.count), thousands(t.bytes), (t.bytes / MiB).toFixed(1)]);
  rows.push(["all", String(p.gguf.tensors.length), thousands(p.plan.uploadBytes), (p.plan.uploadBytes / MiB).toFixed(1)]);
  out.push(table([[dim("type"), dim("tensors"), dim("bytes"), dim("MiB")], ...rows], [1, 2, 3], ""));
  const l = p.plan.ledger;
  out.push(`VRAM needed: ${bold(mib(l.totalBytes))}, one allocation (${thousands(l.dataBytes)} B of tensors + ${thousands(l.paddingBytes)} B of padding)`);
  out.push(p.plan.tiedHead ? "LM head: tied — output.weight is token_embd.weight's memory" : "LM head: output.weight, a tensor of its own");
  return out;
}

export function fitsLine(d: DeviceInfo, needed: number): string {
  const fits = needed <= d.freeBytes;
  return `${d.index}: ${d.name} — ${humanBytes(d.freeBytes)} free of ${humanBytes(d.totalBytes)} · ${fits ? "fits" : `does not fit (needs ${humanBytes(needed)})`}`;
}

/** What --unchecked loads without: the registry's first objection. */
export function uncheckedLine(p: { check: Planned["check"] }): string {
  const first = p.check.problems[0]?.message ?? "";
  return `layout not checked (--unchecked): ${first}${p.check.problems.length > 1 ? ` (and ${p.check.problems.length - 1} more)` : ""}; every tensor is loaded as the file has it`;
}

/** After the load: where the VRAM went, as the ledger, CUDA and nvidia-smi each see it, and how long each step took. */
export function summaryLines(m: LoadedModel, smiBytes: number | null, verified: boolean): string[] {
  const r = m.report;
  const t = r.timings;
  const dropped = r.freeBefore - r.freeAfter;
  const byType = r.gguf.totalsByType().map((x) => `${x.name} ${x.count}`).join(" · ");
  const out = [
    `${bold(String(r.plan.tensors.filter((x) => !x.aliasOf).length))} tensors in VRAM on GPU ${r.device} in ${bold(ms(t.total))}${verified ? " · verified: every tensor's VRAM equals the file" : ""}`,
    dim(`by type: ${byType}`),
    "",
    table([
      [dim("VRAM"), ""],
      ["the ledger", `${mib(m.ledger.totalBytes)}: ${thousands(m.ledger.dataBytes)} B of tensors + ${thousands(m.ledger.paddingBytes)} B of padding`],
      ["cudaMemGetInfo", `free fell by ${mib(dropped)} (${humanBytes(r.freeAfter)} of ${humanBytes(r.totalVram)} free now)`],
      ["nvidia-smi", smiBytes === null ? "not available" : `${mib(smiBytes, 0)} for this process (arena + CUDA context)`],
    ], [], ""),
    "",
    table([
      [dim("time"), ""],
      ["CUDA start", `${ms(t.cudaInit)}, overlapped with parsing (then waited ${ms(t.cudaWait)})`],
      ["parse + check", ms(t.parse)],
      ["allocate", ms(t.allocate)],
      ["upload", `${ms(t.upload)} (${gbps(r.plan.uploadBytes, t.upload)}, ${r.workers} workers)`],
      ["verify", verified ? ms(t.verify) : "—"],
    ], [], ""),
  ];
  if (r.plan.tiedHead) out.push("", "output.weight is tied to token_embd.weight: one copy in VRAM, two names.");
  if (!r.check.ok) out.push("", uncheckedLine(r));
  for (const w of r.check.warnings) out.push(dim(`note: ${w}`));
  return out;
}

// ─── JSON ─────────────────────────────────────────────────────────────────────

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
  device: { index: number; name: string; computeCapability: string; totalBytes: number; freeBytes: number } | null;
  plan: {
    arenaBytes: number;
    dataBytes: number;
    paddingBytes: number;
    byType: { type: string; count: number; bytes: number }[];
    tensors: { name: string; type: string; shape: number[]; bytes: number; shard: number; fileOffset: number; offset: number; aliasOf?: string }[];
  };
  dryRun: boolean;
  ledger: { totalBytes: number; dataBytes: number; paddingBytes: number } | null;
  vram: { ledgerBytes: number; cudaMemGetInfoDropBytes: number; nvidiaSmiBytes: number | null; freeBytesAfter: number; totalBytes: number } | null;
  timings: LoadReport["timings"] | null;
  verified: boolean;
}

export function loadJson(p: Planned, device: DeviceInfo | null, loaded: LoadedModel | null, smiBytes: number | null, verified: boolean): LoadJson {
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
    device: device ? { index: device.index, name: device.name, computeCapability: device.computeCapability, totalBytes: device.totalBytes, freeBytes: device.freeBytes } : null,
    plan: {
      arenaBytes: p.plan.arenaBytes,
      dataBytes: p.plan.ledger.dataBytes,
      paddingBytes: p.plan.ledger.paddingBytes,
      byType: p.gguf.totalsByType().map((t) => ({ type: t.name, count: t.count, bytes: t.bytes })),
      tensors: p.plan.tensors.map((t) => ({ name: t.name, type: ggmlTypeName(t.type), shape: [...t.shape], bytes: t.bytes, shard: t.shard, fileOffset: t.fileOffset, offset: t.offset, ...(t.aliasOf ? { aliasOf: t.aliasOf } : {}) })),
    },
    dryRun: loaded === null,
    ledger: loaded ? { totalBytes: loaded.ledger.totalBytes, dataBytes: loaded.ledger.dataBytes, paddingBytes: loaded.ledger.paddingBytes } : null,
    vram: r ? { ledgerBytes: loaded!.ledger.totalBytes, cudaMemGetInfoDropBytes: r.freeBefore - r.freeAfter, nvidiaSmiBytes: smiBytes, freeBytesAfter: r.freeAfter, totalBytes: r.totalVram } : null,
    timings: r ? r.timings : null,
    verified,
  };
}
