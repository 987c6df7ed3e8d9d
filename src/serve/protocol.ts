// The resident-model protocol: what a client and `bun run serve` say to each
// other over the Unix socket, validated with zod on both sides. Its C side is
// cuda/client/ (libgguf_vram_client), which reads the same frames.
//
// Framing (cuda/wire.h): every message is one frame — a 16-byte header (magic
// "GVR1", JSON bytes, binary bytes, descriptor count, each a little-endian u32),
// the JSON text (UTF-8), then the binary part; descriptors travel as SCM_RIGHTS
// with the frame's first byte. A client's frame is JSON only, at most 64 KiB.
//
// A client sends requests, each with an `id` it chose; the server answers each
// with exactly one reply carrying that id (`ok` true or false), and, for a
// load, any number of events before it (`event`: "phase" or "progress").
// Replies may come in another order than the requests. Version: `v`; a server
// refuses a request of another version with BAD_REQUEST.

import { z } from "zod";

export const PROTOCOL_VERSION = 1;
/** The largest request frame a server reads (cuda/wire.h: GV_WIRE_MAX_REQUEST). */
export const MAX_REQUEST_BYTES = 64 * 1024;

// ─── requests ─────────────────────────────────────────────────────────────────

const id = z.number().int().nonnegative().max(2 ** 31 - 1);
const deviceIndex = z.number().int().nonnegative().max(1023);
const deviceList = z.array(deviceIndex).min(1).max(64);

export const Placement = z.union([
  z.object({ device: deviceIndex }).strict(),
  z.object({ devices: deviceList, split: z.array(z.number().nonnegative().finite()).max(64).optional() }).strict(),
  z.object({ replicas: deviceList }).strict(),
]);
export type Placement = z.infer<typeof Placement>;

/** How long a model stays after its last detach: milliseconds, or -1 for as long as the server runs. */
const keepAlive = z.number().int().min(-1).max(365 * 24 * 3600 * 1000);

const base = { v: z.literal(PROTOCOL_VERSION), id };

export const Request = z.discriminatedUnion("op", [
  z.object({ ...base, op: z.literal("hello"), client: z.string().max(256), pid: z.number().int().nonnegative() }).strict(),
  z
    .object({
      ...base,
      op: z.literal("load"),
      /** Absolute: the client resolves it against its own folder. */
      path: z.string().min(1).max(4096).startsWith("/"),
      placement: Placement.optional(),
      verify: z.boolean().optional(),
      unchecked: z.boolean().optional(),
      keepAliveMs: keepAlive.optional(),
      /** Send phase and progress events before the reply. */
      progress: z.boolean().optional(),
    })
    .strict(),
  z.object({ ...base, op: z.literal("list") }).strict(),
  /** `model`: a model id ("m3") or the absolute path of its file. */
  z.object({ ...base, op: z.literal("attach"), model: z.string().min(1).max(4096) }).strict(),
  z.object({ ...base, op: z.literal("detach"), attachment: z.string().min(1).max(64) }).strict(),
  z.object({ ...base, op: z.literal("unload"), model: z.string().min(1).max(4096) }).strict(),
  z.object({ ...base, op: z.literal("stats") }).strict(),
]);
export type Request = z.infer<typeof Request>;
export type Op = Request["op"];

// ─── replies and events ───────────────────────────────────────────────────────

export const ErrorCode = z.enum([
  "BAD_REQUEST", // malformed, oversized, of another version, or an unknown op
  "NO_SUCH_MODEL",
  "NOT_ATTACHED", // a detach of an attachment this connection does not hold (twice, or never)
  "HELD", // unload of a model clients hold
  "OUT_OF_VRAM", // no room, even after evicting every model nobody holds
  "LOAD_FAILED", // the load itself failed: `cause` has the loader's code
  "NO_CUDA_DEVICE",
  "PEER_REFUSED", // another user's connection
  "SHUTTING_DOWN",
  "INTERNAL",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const ReplyError = z.object({
  code: ErrorCode,
  message: z.string(),
  hint: z.string(),
  /** For LOAD_FAILED: the loader's code (CORRUPT_FILE, FILE_NOT_FOUND, …). */
  cause: z.string().optional(),
});
export type ReplyError = z.infer<typeof ReplyError>;

export const Holder = z.object({ pid: z.number().int(), client: z.string(), attachments: z.number().int() });

export const ModelDeviceInfo = z.object({
  device: z.number().int(),
  /** The arena: tensor data and alignment padding. */
  bytes: z.number().int(),
  /** The shareable allocation behind it (bytes rounded up to 2 MiB). */
  allocBytes: z.number().int(),
  tensors: z.number().int(),
  layers: z.tuple([z.number().int(), z.number().int()]).nullable(),
});

export const SourceFileInfo = z.object({ path: z.string(), fileSize: z.number().int(), mtimeMs: z.number() });

export const ModelInfo = z.object({
  id: z.string(),
  /** The file it was loaded from (the first of a split set). */
  path: z.string(),
  /** Every file, by shard, as they were when loaded. */
  files: z.array(SourceFileInfo),
  architecture: z.string().nullable(),
  kind: z.enum(["single", "split", "replicas"]),
  devices: z.array(ModelDeviceInfo),
  bytes: z.number().int(),
  tensors: z.number().int(),
  verified: z.boolean(),
  loadedAt: z.number(),
  lastUsedAt: z.number(),
  /** Milliseconds since the last detach (or the load), while nobody holds it; 0 while held. */
  idleMs: z.number(),
  keepAliveMs: keepAlive,
  holders: z.array(Holder),
});
export type ModelInfo = z.infer<typeof ModelInfo>;

export const DeviceStats = z.object({
  device: z.number().int(),
  name: z.string(),
  totalBytes: z.number().int(),
  freeBytes: z.number().int(),
  /** What resident models may use on it. */
  budgetBytes: z.number().int(),
  /** What resident models use on it. */
  residentBytes: z.number().int(),
});

const ok = { v: z.literal(PROTOCOL_VERSION), id, ok: z.literal(true) };

export const Reply = z.discriminatedUnion("op", [
  z.object({ ...ok, op: z.literal("hello"), server: z.string(), pid: z.number().int(), protocol: z.literal(PROTOCOL_VERSION) }),
  /** `resident`: it was there already (same file — device, inode, size, mtime — and placement), nothing was loaded. */
  z.object({ ...ok, op: z.literal("load"), model: ModelInfo, resident: z.boolean(), ms: z.number() }),
  z.object({ ...ok, op: z.literal("list"), models: z.array(ModelInfo) }),
  /** The binary part is the tensor table (tensorTable below); one descriptor per device part, in its order. */
  z.object({ ...ok, op: z.literal("attach"), model: ModelInfo, attachment: z.string() }),
  z.object({ ...ok, op: z.literal("detach") }),
  z.object({ ...ok, op: z.literal("unload"), freedBytes: z.number().int() }),
  z.object({ ...ok, op: z.literal("stats"), pid: z.number().int(), uptimeMs: z.number(), devices: z.array(DeviceStats), models: z.array(ModelInfo), clients: z.number().int(), requests: z.number().int() }),
]);
export type Reply = z.infer<typeof Reply>;

export const Failure = z.object({ v: z.literal(PROTOCOL_VERSION), id: id.nullable(), ok: z.literal(false), error: ReplyError });
export type Failure = z.infer<typeof Failure>;

export const LoadEvent = z.union([
  z.object({ v: z.literal(PROTOCOL_VERSION), id, event: z.literal("phase"), phase: z.string() }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id,
    event: z.literal("progress"),
    done: z.number(),
    total: z.number(),
    devices: z.array(z.object({ device: z.number().int(), done: z.number(), total: z.number() })),
  }),
]);
export type LoadEvent = z.infer<typeof LoadEvent>;

/** Anything a server sends. */
export const ServerMessage = z.union([Reply, Failure, LoadEvent]);
export type ServerMessage = z.infer<typeof ServerMessage>;

// ─── the tensor table (an attach reply's binary part) ─────────────────────────
//
// Little-endian, 8-byte aligned records; the C client reads it as is:
//   header   u32 magic "GVTT", u32 version 1, u32 parts, u32 tensors
//   part     i32 device, u32 descriptor index, u64 allocation bytes, u64 arena bytes       (24 bytes)
//   tensor   u32 part, u32 ggml type, u32 dims, u32 name bytes, u64 ne[4], u64 offset,
//            u64 bytes, u64 file offset, u32 shard, u32 flags (1: an alias of another
//            tensor's memory), then the name (UTF-8), zero-padded to 8 bytes             (80 + name)

export const TABLE_MAGIC = 0x54545647; // "GVTT"
export const TABLE_VERSION = 1;
export const TENSOR_ALIAS = 1;

export interface TablePart {
  readonly device: number;
  readonly allocBytes: number;
  readonly bytes: number;
}

export interface TableTensor {
  readonly part: number;
  readonly name: string;
  readonly type: number;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly bytes: number;
  readonly fileOffset: number;
  readonly shard: number;
  readonly alias: boolean;
}

const pad8 = (n: number) => (n + 7) & ~7;

export function encodeTensorTable(parts: readonly TablePart[], tensors: readonly TableTensor[]): Uint8Array {
  const names = tensors.map((t) => new TextEncoder().encode(t.name));
  const size = 16 + parts.length * 24 + names.reduce((n, b) => n + 80 + pad8(b.length), 0);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, TABLE_MAGIC, true);
  v.setUint32(4, TABLE_VERSION, true);
  v.setUint32(8, parts.length, true);
  v.setUint32(12, tensors.length, true);
  let at = 16;
  parts.forEach((p, i) => {
    v.setInt32(at, p.device, true);
    v.setUint32(at + 4, i, true);
    v.setBigUint64(at + 8, BigInt(p.allocBytes), true);
    v.setBigUint64(at + 16, BigInt(p.bytes), true);
    at += 24;
  });
  tensors.forEach((t, i) => {
    if (t.shape.length > 4) throw new Error(`tensor ${t.name} has ${t.shape.length} dimensions; ggml has at most 4`);
    v.setUint32(at, t.part, true);
    v.setUint32(at + 4, t.type, true);
    v.setUint32(at + 8, t.shape.length, true);
    v.setUint32(at + 12, names[i]!.length, true);
    for (let d = 0; d < 4; d++) v.setBigUint64(at + 16 + 8 * d, BigInt(t.shape[d] ?? 1), true);
    v.setBigUint64(at + 48, BigInt(t.offset), true);
    v.setBigUint64(at + 56, BigInt(t.bytes), true);
    v.setBigUint64(at + 64, BigInt(t.fileOffset), true);
    v.setUint32(at + 72, t.shard, true);
    v.setUint32(at + 76, t.alias ? TENSOR_ALIAS : 0, true);
    out.set(names[i]!, at + 80);
    at += 80 + pad8(names[i]!.length);
  });
  return out;
}

/** The table back, every count and offset checked against the bytes (a client does not trust a server blindly either). */
export function decodeTensorTable(bytes: Uint8Array): { parts: TablePart[]; tensors: TableTensor[] } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string): never => {
    throw new Error(`the server's tensor table is malformed: ${why}`);
  };
  if (bytes.length < 16 || v.getUint32(0, true) !== TABLE_MAGIC || v.getUint32(4, true) !== TABLE_VERSION) fail("bad header");
  const nParts = v.getUint32(8, true);
  const nTensors = v.getUint32(12, true);
  if (16 + nParts * 24 + nTensors * 80 > bytes.length) fail("counts larger than the table");
  const parts: TablePart[] = [];
  let at = 16;
  for (let i = 0; i < nParts; i++, at += 24) {
    parts.push({ device: v.getInt32(at, true), allocBytes: Number(v.getBigUint64(at + 8, true)), bytes: Number(v.getBigUint64(at + 16, true)) });
  }
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const tensors: TableTensor[] = [];
  for (let i = 0; i < nTensors; i++) {
    if (at + 80 > bytes.length) fail(`tensor ${i} runs past the end`);
    const part = v.getUint32(at, true);
    const dims = v.getUint32(at + 8, true);
    const nameBytes = v.getUint32(at + 12, true);
    if (part >= nParts || dims < 1 || dims > 4 || at + 80 + nameBytes > bytes.length) fail(`tensor ${i} is out of range`);
    const offset = Number(v.getBigUint64(at + 48, true));
    const size = Number(v.getBigUint64(at + 56, true));
    if (offset + size > parts[part]!.bytes) fail(`tensor ${i} lies outside its part`);
    tensors.push({
      part,
      type: v.getUint32(at + 4, true),
      shape: Array.from({ length: dims }, (_, d) => Number(v.getBigUint64(at + 16 + 8 * d, true))),
      offset,
      bytes: size,
      fileOffset: Number(v.getBigUint64(at + 64, true)),
      shard: v.getUint32(at + 72, true),
      alias: (v.getUint32(at + 76, true) & TENSOR_ALIAS) !== 0,
      name: decoder.decode(bytes.subarray(at + 80, at + 80 + nameBytes)),
    });
    at += 80 + pad8(nameBytes);
  }
  return { parts, tensors };
}
