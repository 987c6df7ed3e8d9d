// What `bun run inspect` shows: the documented JSON document, and the text
// rendering of the same facts.

import type { ModelCheck } from "../arch/index.ts";
import { describeValue, ggmlTypeName, shortestF32, type GgufArray, type GgufFile, type GgufValue, type ScalarTypeName, type ValueTypeName } from "../gguf/index.ts";
import { bold, dim, green, humanBytes, MiB, red, table, thousands, yellow } from "./format.ts";

// ─── JSON ─────────────────────────────────────────────────────────────────────

type JsonScalar = string | number | boolean;
/** An array shows its item type and length; an array of arrays, each of its arrays the same way. */
export type JsonArray = { type: "array"; itemType: ValueTypeName; length: number; items?: JsonArray[] };
export type JsonValue = { type: ScalarTypeName; value: JsonScalar } | JsonArray;

export interface InspectJson {
  file: string;
  fileSize: number;
  version: number;
  alignment: number;
  dataOffset: number;
  metadata: Record<string, JsonValue>;
  /** Every file of the model: one, or each shard of a split set (offsets are in the tensor's shard). */
  shards: { file: string; fileSize: number; dataOffset: number; tensors: number }[];
  tensors: { name: string; type: string; shape: number[]; shard: number; offset: number; bytes: number }[];
  model: {
    architecture: string | null;
    ok: boolean;
    config: Record<string, number | string> | null;
    tiedHead: boolean;
    problems: { code: string; message: string; tensor?: string; key?: string }[];
    warnings: string[];
  };
}

/** Integers beyond ±2^53 are written as decimal strings; non-finite floats as strings too. */
function jsonNumber(v: number | bigint): number | string {
  if (typeof v === "bigint") return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  return Number.isFinite(v) ? v : String(v);
}

export function jsonValue(v: GgufValue): JsonValue {
  if (v.type === "array") return jsonArray(v);
  if (v.type === "string" || v.type === "bool") return { type: v.type, value: v.value };
  if (v.type === "f32") return { type: v.type, value: jsonNumber(shortestF32(v.value)) };
  return { type: v.type, value: jsonNumber(v.value) };
}

function jsonArray(a: GgufArray): JsonArray {
  if (a.itemType !== "array") return { type: "array", itemType: a.itemType, length: a.length };
  return { type: "array", itemType: "array", length: a.length, items: a.items.map(jsonArray) };
}

export function inspectJson(file: string, g: GgufFile, check: ModelCheck): InspectJson {
  return {
    file,
    fileSize: g.fileSize,
    version: g.version,
    alignment: g.alignment,
    dataOffset: g.dataOffset,
    metadata: Object.fromEntries([...g.metadata].map(([k, v]) => [k, jsonValue(v)])),
    shards: g.shards.map((s) => ({ file: s.path ?? file, fileSize: s.fileSize, dataOffset: s.dataOffset, tensors: s.tensorCount })),
    tensors: g.tensors.map((t) => ({ name: t.name, type: ggmlTypeName(t.type), shape: [...t.shape], shard: t.shard, offset: t.offset, bytes: t.bytes })),
    model: {
      architecture: check.architecture,
      ok: check.ok,
      config: check.config ? { ...check.config } : null,
      tiedHead: check.tiedHead,
      problems: check.problems.map((p) => ({ ...p })),
      warnings: [...check.warnings],
    },
  };
}

// ─── text ─────────────────────────────────────────────────────────────────────

const SHOWN_TENSORS = 12;

export function inspectText(file: string, g: GgufFile, check: ModelCheck, full: boolean): string {
  const out: string[] = [];
  out.push(bold(file));
  out.push(`  GGUF v${g.version} · ${thousands(g.fileSize)} bytes (${humanBytes(g.fileSize)}) · alignment ${g.alignment} · header ${thousands(g.headerBytes)} bytes · data at ${thousands(g.dataOffset)}`);
  out.push(`  ${g.tensors.length} tensors · ${g.metadata.size} metadata keys`);
  const split = g.shards.length > 1;
  if (split) {
    out.push(`  split into ${g.shards.length} files (metadata from the first):`);
    out.push(table(g.shards.map((s, i) => [String(i + 1), s.path ?? "?", `${thousands(s.tensorCount)} tensors`, humanBytes(s.fileSize)]), [0], "    "));
  }
  out.push("");

  out.push(bold("metadata"));
  out.push(table([...g.metadata].map(([k, v]) => [k, dim(v.type === "array" ? `${v.itemType}[${v.length}]` : v.type), full ? fullValue(v) : describeValue(v)])));
  out.push("");

  out.push(bold("tensors"));
  const rows = g.tensors.map((t, i) => [String(i), t.name, ggmlTypeName(t.type), `[${t.shape.join(", ")}]`, ...(split ? [String(t.shard + 1)] : []), thousands(t.offset), thousands(t.bytes)]);
  const blank = rows[0]?.map(() => "") ?? [];
  const shown = full || rows.length <= 2 * SHOWN_TENSORS ? rows : [...rows.slice(0, SHOWN_TENSORS), ["…", dim(`${rows.length - 2 * SHOWN_TENSORS} more (--full lists all)`), ...blank.slice(2)], ...rows.slice(-SHOWN_TENSORS)];
  const head = [dim("#"), dim("name"), dim("type"), dim("shape"), ...(split ? [dim("file")] : []), dim("offset"), dim("bytes")];
  out.push(table([head, ...shown], split ? [0, 4, 5, 6] : [0, 4, 5]), "");

  out.push(bold("totals by type"));
  const totals = g.totalsByType();
  const toMiB = (b: number) => (b / MiB).toFixed(2);
  const totalRows = totals.map((t) => [t.name, String(t.count), thousands(t.bytes), toMiB(t.bytes)]);
  totalRows.push([bold("all"), bold(String(g.tensors.length)), bold(thousands(g.tensorDataBytes)), bold(toMiB(g.tensorDataBytes))]);
  out.push(table([[dim("type"), dim("tensors"), dim("bytes"), dim("MiB")], ...totalRows], [1, 2, 3]), "");

  out.push(bold("model"), ...modelLines(check));
  return out.join("\n");
}

export function modelLines(check: ModelCheck): string[] {
  const out: string[] = [];
  const c = check.config;
  if (c) {
    const experts = c.experts > 0 ? ` · ${c.experts} experts (${c.expertsUsed} used${c.expertFfnSize ? `, FFN ${c.expertFfnSize}` : ""}${c.sharedExperts ? `, ${c.sharedExperts} shared` : ""})` : "";
    out.push(`  ${c.architecture} · ${c.layers} layers · hidden ${c.hiddenSize} · ${c.heads} heads (${c.kvHeads} KV, head dim ${c.headDim}) · FFN ${c.ffnSize}${experts}`);
    out.push(`  vocab ${thousands(c.vocabSize)} · context ${thousands(c.contextLength)} · rope base ${c.ropeBase}${c.ropeScaling !== "linear" ? ` (${c.ropeScaling})` : ""} · RMS eps ${c.normEpsilon.toExponential(0)}${c.slidingWindow ? ` · sliding window ${c.slidingWindow}` : ""}`);
    out.push(`  LM head: ${check.tiedHead ? "tied to token_embd.weight (no output.weight)" : "output.weight"}`);
  } else if (check.architecture) out.push(`  architecture ${check.architecture}`);
  if (check.ok) out.push(`  ${green("✓")} every expected tensor is present, with the expected shape and an allowed type`);
  for (const p of check.problems) out.push(`  ${red("✗")} ${p.message}`);
  for (const w of check.warnings) out.push(`  ${yellow("!")} ${w}`);
  return out;
}

function fullValue(v: GgufValue): string {
  return describeValue(v, Number.MAX_SAFE_INTEGER);
}
