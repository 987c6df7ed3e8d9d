// A stand-in for `gguf-vram serve` on top of IpcServer, for the C client's
// tests: it answers hello, load (with events before the reply), list, attach
// (a tensor table and one descriptor per part, which a machine without a GPU
// cannot map) and detach as the protocol says, and a test can replace any
// answer. Every request it got is kept, parsed.

import { openSync } from "node:fs";
import { encodeTensorTable, type TablePart, type TableTensor } from "../../src/serve/protocol.ts";
import { PumpedServer } from "./ipc-server.ts";

export interface Received {
  readonly conn: number;
  readonly pid: number;
  readonly request: Record<string, unknown> & { id: number; op: string };
}

/** What the stand-in does with a request: a reply to send, or "disconnect", or "ignore". */
export type Answer = { json: unknown; bin?: Uint8Array; fds?: number[] } | "disconnect" | "ignore";

export const STAND_IN_PARTS: TablePart[] = [{ device: 0, allocBytes: 4 << 20, bytes: 3 << 20 }];
export const STAND_IN_TENSORS: TableTensor[] = [
  { part: 0, name: "token_embd.weight", type: 12, shape: [4096, 256], offset: 0, bytes: 1 << 20, fileOffset: 4096, shard: 0, alias: false },
  { part: 0, name: "blk.0.attn_q.weight", type: 14, shape: [4096, 4096], offset: 1 << 20, bytes: 1 << 20, fileOffset: 4096 + (1 << 20), shard: 0, alias: false },
  { part: 0, name: "output.weight", type: 12, shape: [4096, 256], offset: 0, bytes: 1 << 20, fileOffset: 4096, shard: 0, alias: true },
];

export function modelInfo(path: string) {
  return {
    id: "m1",
    path,
    files: [{ path, fileSize: 4096 + (2 << 20), mtimeMs: 0 }],
    architecture: "llama",
    kind: "single",
    devices: [{ device: 0, bytes: 3 << 20, allocBytes: 4 << 20, tensors: 3, layers: [0, 0] }],
    bytes: 3 << 20,
    tensors: 3,
    verified: false,
    loadedAt: 0,
    lastUsedAt: 0,
    idleMs: 0,
    keepAliveMs: -1,
    holders: [],
  };
}

export class StandInServer {
  readonly pumped: PumpedServer;
  readonly received: Received[] = [];
  /** A test's own answer for a request; undefined falls back to the protocol's. */
  answer: ((received: Received) => Answer | undefined) | null = null;
  /** The file every descriptor of an attach reply opens (a machine without a GPU has nothing to export). */
  descriptorFile = "/dev/null";
  #attachments = 0;

  constructor(path: string) {
    this.pumped = new PumpedServer(path);
    this.pumped.onEvent = (event) => {
      if (event.type !== "message") return;
      const received: Received = { conn: event.conn, pid: event.pid, request: JSON.parse(event.text) };
      this.received.push(received);
      this.#respond(received);
    };
  }

  /** Requests of `op` received so far. */
  requests(op: string): Received["request"][] {
    return this.received.filter((r) => r.request.op === op).map((r) => r.request);
  }

  /** A reply to request `id` with `fields`. */
  static ok(id: number, fields: Record<string, unknown>): Record<string, unknown> {
    return { v: 1, id, ok: true, ...fields };
  }

  static failure(id: number | null, code: string, message: string, hint = "do something else"): Record<string, unknown> {
    return { v: 1, id, ok: false, error: { code, message, hint } };
  }

  /** An attach reply: the model, an attachment id, a table and one descriptor per part. */
  attachReply(id: number, table = encodeTensorTable(STAND_IN_PARTS, STAND_IN_TENSORS), parts = STAND_IN_PARTS.length): Answer {
    const attachment = `a${++this.#attachments}`;
    const fds = Array.from({ length: parts }, () => openSync(this.descriptorFile, "r"));
    return { json: StandInServer.ok(id, { op: "attach", model: modelInfo("/models/stand-in.gguf"), attachment }), bin: table, fds };
  }

  #respond(received: Received): void {
    const { request, conn } = received;
    const answer = this.answer?.(received) ?? this.#protocolAnswer(request);
    if (answer === "ignore") return;
    if (answer === "disconnect") return this.pumped.server.disconnect(conn);
    this.pumped.server.send(conn, JSON.stringify(answer.json), answer.bin, answer.fds);
  }

  #protocolAnswer(request: Received["request"]): Answer {
    const { id, op } = request;
    switch (op) {
      case "hello":
        return { json: StandInServer.ok(id, { op, server: "stand-in", pid: process.pid, protocol: 1 }) };
      case "load": {
        // events first, as a load that reports its progress sends them
        return { json: StandInServer.ok(id, { op, model: modelInfo(String(request.path)), resident: false, ms: 1 }) };
      }
      case "list":
        return { json: StandInServer.ok(id, { op, models: [modelInfo("/models/stand-in.gguf")] }) };
      case "attach":
        return this.attachReply(id);
      case "detach":
        return { json: StandInServer.ok(id, { op }) };
      default:
        return { json: StandInServer.failure(id, "BAD_REQUEST", `unknown op ${op}`) };
    }
  }

  /** Sends load events for request `id` to `conn` before its reply (a test's answer calls it). */
  sendLoadEvents(conn: number, id: number): void {
    this.pumped.server.send(conn, JSON.stringify({ v: 1, id, event: "phase", phase: "upload" }));
    this.pumped.server.send(conn, JSON.stringify({ v: 1, id, event: "progress", done: 1, total: 2, devices: [{ device: 0, done: 1, total: 2 }] }));
  }

  close(): Promise<void> {
    return this.pumped.close();
  }
}
