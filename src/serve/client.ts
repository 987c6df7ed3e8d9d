// The TypeScript client of a resident-model server: ask it to load, list,
// unload, and attach to a model — mapping its VRAM into this process and
// reading it through the same API as a model loaded here (Attachment is a
// Model). The socket work is the C library's (descriptors cross processes only
// there); this thread polls it, so it never blocks on the server.

import { resolve } from "node:path";
import { Arena, closeFd, IpcClient, openCuda, VramLedger } from "../cuda/index.ts";
import { Model, toLoadError, type DeviceProgress, type LoadPhase, type ModelPart, type TensorPlacement } from "../load/index.ts";
import { ServeError } from "./errors.ts";
import { decodeTensorTable, Failure, LoadEvent, PROTOCOL_VERSION, Reply, ServerMessage, type ModelInfo, type Placement, type Request } from "./protocol.ts";
import { defaultSocketPath } from "./socket-path.ts";

export interface ConnectOptions {
  /** The server's socket (default: defaultSocketPath()). */
  readonly socket?: string;
  /** How this client names itself to the server (its list shows it). */
  readonly client?: string;
}

export interface ServeLoadOptions {
  readonly device?: number;
  readonly devices?: readonly number[];
  readonly split?: readonly number[];
  readonly replicas?: readonly number[];
  readonly verify?: boolean;
  readonly unchecked?: boolean;
  /** How long the model stays once nobody holds it (ms; -1: as long as the server runs). */
  readonly keepAliveMs?: number;
  readonly onPhase?: (phase: LoadPhase) => void;
  readonly onProgress?: (done: number, total: number, devices: readonly DeviceProgress[]) => void;
}

type Op = Request["op"];
type ReplyOf<O extends Op> = Extract<Reply, { op: O }>;
type Received = { json: string; bin: Uint8Array; fds: number[] };

interface Pending {
  readonly op: Op;
  readonly resolve: (m: { reply: Reply; bin: Uint8Array; fds: number[] }) => void;
  readonly reject: (e: Error) => void;
  readonly onEvent?: (e: LoadEvent) => void;
}

export class ServeClient {
  readonly #ipc: IpcClient;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #polling = false;
  #closed = false;
  /** The server's pid, from its greeting. */
  serverPid = 0;

  private constructor(
    ipc: IpcClient,
    readonly socket: string,
  ) {
    this.#ipc = ipc;
  }

  /** Connects and greets the server: NO_SERVER when nothing listens at the socket. */
  static async connect(options: ConnectOptions = {}): Promise<ServeClient> {
    const socket = options.socket ?? defaultSocketPath();
    try {
      await openCuda();
    } catch (e) {
      throw toLoadError(e);
    }
    let ipc: IpcClient;
    try {
      ipc = IpcClient.connect(socket);
    } catch (e) {
      if ((e as { code?: string }).code === "NO_SERVER") throw new ServeError("NO_SERVER", `no server is listening on ${socket}`, "start one with `bun run serve` (or give its --socket)");
      throw e;
    }
    const client = new ServeClient(ipc, socket);
    try {
      const hello = (await client.#call({ op: "hello", client: options.client ?? `bun ${process.argv[1] ?? ""}`.trim(), pid: process.pid })).reply as ReplyOf<"hello">;
      client.serverPid = hello.pid;
    } catch (e) {
      client.close();
      throw e;
    }
    return client;
  }

  /** Loads the model at `path` (resolved against this process's folder), or finds it resident. */
  async load(path: string, options: ServeLoadOptions = {}): Promise<{ model: ModelInfo; resident: boolean; ms: number }> {
    const placement: Placement | undefined =
      options.replicas ? { replicas: [...options.replicas] }
      : options.devices ? { devices: [...options.devices], ...(options.split ? { split: [...options.split] } : {}) }
      : options.device !== undefined ? { device: options.device }
      : undefined;
    const progress = options.onPhase !== undefined || options.onProgress !== undefined;
    const onEvent = (e: LoadEvent) => {
      if (e.event === "phase") options.onPhase?.(e.phase as LoadPhase);
      else options.onProgress?.(e.done, e.total, e.devices);
    };
    const { reply } = await this.#call(
      { op: "load", path: resolve(path), ...(placement ? { placement } : {}), verify: options.verify, unchecked: options.unchecked, keepAliveMs: options.keepAliveMs, progress },
      onEvent,
    );
    const r = reply as ReplyOf<"load">;
    return { model: r.model, resident: r.resident, ms: r.ms };
  }

  async list(): Promise<ModelInfo[]> {
    return ((await this.#call({ op: "list" })).reply as ReplyOf<"list">).models;
  }

  async stats(): Promise<ReplyOf<"stats">> {
    return (await this.#call({ op: "stats" })).reply as ReplyOf<"stats">;
  }

  /** Unloads a model nobody holds (HELD otherwise); the bytes freed. */
  async unload(model: string): Promise<number> {
    return ((await this.#call({ op: "unload", model: model.includes("/") ? resolve(model) : model })).reply as ReplyOf<"unload">).freedBytes;
  }

  /**
   * Attaches to a resident model (its id, or the path of its file): its VRAM
   * mapped here on every device it spans, read through the Model API. Close
   * the attachment to let go of it (the server keeps the model while any
   * attachment holds it).
   */
  async attach(model: string): Promise<Attachment> {
    const { reply, bin, fds } = await this.#call({ op: "attach", model: model.includes("/") ? resolve(model) : model });
    const r = reply as ReplyOf<"attach">;
    try {
      return Attachment.map(this, r.model, r.attachment, bin, fds);
    } finally {
      for (const fd of fds) closeFd(fd);
    }
  }

  /** Sends a detach without waiting (an attachment's close); a closed connection already let go of it. */
  detachQuietly(attachment: string): void {
    if (this.#closed) return;
    this.#call({ op: "detach", attachment }).catch(() => {});
  }

  /** Closes the connection: the server lets go of every attachment made through it (they stay mapped here until closed). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ipc.close();
    this.#failAll(new ServeError("DISCONNECTED", "the connection was closed", "connect again"));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  // ─── requests and replies ───────────────────────────────────────────────────

  #call(body: Record<string, unknown> & { op: Op }, onEvent?: (e: LoadEvent) => void): Promise<{ reply: Reply; bin: Uint8Array; fds: number[] }> {
    if (this.#closed) return Promise.reject(new ServeError("DISCONNECTED", "the connection is closed", "connect again"));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { op: body.op, resolve, reject, onEvent });
      try {
        this.#ipc.request(JSON.stringify({ v: PROTOCOL_VERSION, id, ...body }));
      } catch (e) {
        this.#pending.delete(id);
        return reject(this.#lost(e));
      }
      void this.#poll();
    });
  }

  /** Reads what the server sent while replies are owed, yielding to the event loop between looks. */
  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      let idle = 0;
      while (this.#pending.size > 0 && !this.#closed) {
        let m: Received | null;
        try {
          m = this.#ipc.poll(0);
        } catch (e) {
          this.#failAll(this.#lost(e));
          return;
        }
        if (m) {
          idle = 0;
          this.#dispatch(m);
        } else {
          await (idle++ < 50 ? new Promise((r) => setImmediate(r)) : Bun.sleep(1));
        }
      }
    } finally {
      this.#polling = false;
    }
  }

  #dispatch(m: Received): void {
    let parsed: ServerMessage;
    try {
      parsed = ServerMessage.parse(JSON.parse(m.json));
    } catch {
      for (const fd of m.fds) closeFd(fd);
      this.#failAll(new ServeError("PROTOCOL", "the server sent a message this client cannot read", "the server and this client may be of different versions: update both"));
      this.close();
      return;
    }
    const pending = parsed.id === null ? undefined : this.#pending.get(parsed.id);
    if ("event" in parsed) return pending?.onEvent?.(parsed);
    if (!pending) {
      for (const fd of m.fds) closeFd(fd);
      if (!parsed.ok && parsed.id === null) this.#failAll(ServeError.fromReply(parsed.error)); // refused, or a bad frame
      return;
    }
    this.#pending.delete(parsed.id!);
    if (!parsed.ok) return pending.reject(ServeError.fromReply((parsed as Failure).error));
    if (parsed.op !== pending.op) return pending.reject(new ServeError("PROTOCOL", `the server answered ${parsed.op} to a ${pending.op} request`, "update the server and the client together"));
    pending.resolve({ reply: parsed, bin: m.bin, fds: m.fds });
  }

  #lost(e: unknown): Error {
    const code = (e as { code?: string }).code;
    if (code === "DISCONNECTED" || code === "SOCKET") return new ServeError("DISCONNECTED", "the server closed the connection (it stopped, or was killed)", "start it again (bun run serve) and reconnect");
    return e instanceof Error ? e : new Error(String(e));
  }

  #failAll(e: Error): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of all) p.reject(e);
  }
}

/** Connects, attaches, and returns the attachment; closing it also closes the connection it made. */
export async function attach(model: string, options: ConnectOptions = {}): Promise<Attachment> {
  const client = await ServeClient.connect(options);
  try {
    const a = await client.attach(model);
    a.closesConnection = true;
    return a;
  } catch (e) {
    client.close();
    throw e;
  }
}

/** Connects to the server (default socket unless given). */
export function connect(options: ConnectOptions = {}): Promise<ServeClient> {
  return ServeClient.connect(options);
}

/** A resident model mapped into this process: a Model whose close() unmaps it and lets the server know. */
export class Attachment extends Model {
  /** Closing this attachment closes its client too (attach() made the connection for it). */
  closesConnection = false;

  private constructor(
    private readonly client: ServeClient,
    /** The server's id for this attachment ("a12"). */
    readonly id: string,
    /** The server's id for the model ("m3"), and what it said of it. */
    readonly info: ModelInfo,
    parts: ConstructorParameters<typeof Model>[1],
  ) {
    super(info.kind, parts, { path: info.path, fileSize: info.files[0]?.fileSize ?? 0, mtimeMs: info.files[0]?.mtimeMs ?? 0, files: info.files });
  }

  static map(client: ServeClient, info: ModelInfo, id: string, bin: Uint8Array, fds: readonly number[]): Attachment {
    const table = decodeTensorTable(bin);
    if (fds.length !== table.parts.length) throw new ServeError("PROTOCOL", `the server sent ${fds.length} descriptors for ${table.parts.length} devices`, "update the server and the client together");
    const arenas = new DisposableStack();
    try {
      const parts: (Omit<ModelPart, "tensors"> & { tensors: TensorPlacement[] })[] = table.parts.map((p, i) => {
        const arena = arenas.use(Arena.import(fds[i]!, p.allocBytes, p.bytes, p.device));
        const tensors = table.tensors.filter((t) => t.part === i);
        const described = info.devices[i];
        return {
          device: p.device,
          arena,
          layers: described?.layers ?? null,
          ledger: ledgerOf(tensors, p.bytes, p.device),
          tensors: tensors.map((t) => ({ name: t.name, type: t.type, shape: t.shape, bytes: t.bytes, device: p.device, offset: t.offset, shard: t.shard, fileOffset: t.fileOffset, ...(t.alias ? { aliasOf: aliasTarget(tensors, t) } : {}) })),
        };
      });
      const a = new Attachment(client, id, info, parts);
      arenas.move();
      return a;
    } catch (e) {
      arenas.dispose();
      client.detachQuietly(id);
      throw e;
    }
  }

  /** Unmaps the model here and lets the server know; idempotent. */
  override close(): void {
    if (this.closed) return;
    try {
      super.close();
    } finally {
      // Closing the connection lets go of every attachment made through it; otherwise say which one ends.
      if (this.closesConnection) this.client.close();
      else this.client.detachQuietly(this.id);
    }
  }
}

/** The tensor whose memory an alias shares: the other one at the same offset. */
function aliasTarget(tensors: readonly { name: string; offset: number; alias: boolean }[], t: { name: string; offset: number }): string {
  return tensors.find((o) => o.offset === t.offset && !o.alias && o.name !== t.name)?.name ?? t.name;
}

function ledgerOf(tensors: readonly { name: string; offset: number; bytes: number; alias: boolean }[], total: number, device: number): VramLedger {
  const real = tensors.filter((t) => !t.alias).sort((a, b) => a.offset - b.offset);
  const entries = real.map((t, i) => ({ name: t.name, device, offset: t.offset, bytes: t.bytes, padding: (real[i + 1]?.offset ?? total) - t.offset - t.bytes }));
  return new VramLedger(entries, total, 256);
}
