// The resident-model server: it listens on a Unix socket, loads models into
// shareable VRAM with the loader, keeps them, and lets any process attach to
// them (requests.ts answers each request). The socket is the C library's: a
// Worker (pump-worker.ts) waits on it and hands events here, so the JS thread
// never blocks on a client.
//
// Lifetimes: a connection that closes (a client that exits or is killed) lets
// go of every attachment made through it; stop() stops taking connections,
// frees every model (memory that clients have mapped lives on in them until
// they detach), and removes the socket.

import { deviceCount, IpcServer, listDevices, memInfo, nativePath, openCuda, type IpcEvent } from "../cuda/index.ts";
import { Loader, LoadError, toLoadError } from "../load/index.ts";
import type { PumpMessage, PumpStart } from "./pump-worker.ts";
import { ServeError } from "./errors.ts";
import { PROTOCOL_VERSION, Request, type Failure, type ModelInfo, type ReplyError } from "./protocol.ts";
import { Connection, Residents, type Resident } from "./residents.ts";
import { answer } from "./requests.ts";
import { defaultSocketPath, prepareSocketFolder } from "./socket-path.ts";

export interface ServerOptions {
  /** Where to listen (default: defaultSocketPath()). */
  readonly socket?: string;
  /** What resident models may take on each device, in bytes (one number: every device). Default: the device's memory. */
  readonly budgets?: ReadonlyMap<number, number> | number;
  /** How long a model nobody holds stays (ms; -1: until the server stops). Default 5 minutes, a request may say otherwise. */
  readonly keepAliveMs?: number;
  /** Upload threads per device (the loader's default otherwise). */
  readonly workers?: number;
  /** Everything that happens, for a log or a live view. */
  readonly onEvent?: (event: ServerEvent) => void;
}

export type UnloadReason = "request" | "evicted" | "expired" | "shutdown";

export type ServerEvent =
  | { readonly type: "listening"; readonly socket: string; readonly pid: number }
  | { readonly type: "connected" | "disconnected"; readonly conn: number; readonly pid: number }
  | { readonly type: "refused"; readonly pid: number; readonly uid: number }
  | { readonly type: "protocol-error"; readonly conn: number; readonly pid: number; readonly message: string }
  | { readonly type: "loading"; readonly path: string; readonly pid: number }
  | { readonly type: "loaded"; readonly model: ModelInfo; readonly ms: number; readonly resident: boolean }
  | { readonly type: "load-failed"; readonly path: string; readonly code: string; readonly message: string }
  | { readonly type: "attached" | "detached"; readonly model: string; readonly attachment: string; readonly pid: number }
  | { readonly type: "unloaded"; readonly model: ModelInfo; readonly reason: UnloadReason }
  | { readonly type: "stopping" }
  | { readonly type: "error"; readonly message: string };

export const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000;
/** How often models whose keep-alive ran out are looked for. */
const SWEEP_MS = 1000;

export class ResidentServer {
  readonly residents = new Residents();
  readonly connections = new Map<number, Connection>();
  readonly startedAt = Date.now();
  requests = 0;
  /** The cold load in progress, if any: the next one starts after it (requests.ts). */
  coldLoads: Promise<unknown> = Promise.resolve();
  private loader: Promise<Loader> | null = null;
  private readonly sweep: ReturnType<typeof setInterval>;
  private readonly pump: Worker;
  private stopping: Promise<void> | null = null;
  private readonly ended: Promise<void>;
  private endPump: () => void = () => {};

  private constructor(
    readonly socket: string,
    private readonly ipc: IpcServer,
    readonly options: ServerOptions,
  ) {
    this.ended = new Promise((resolve) => (this.endPump = resolve));
    this.pump = new Worker(new URL("./pump-worker.ts", import.meta.url));
    this.pump.addEventListener("message", (e: MessageEvent<PumpMessage>) => this.onPump(e.data));
    this.pump.addEventListener("error", (e) => this.emit({ type: "error", message: `the socket pump failed: ${(e as ErrorEvent).message}` }));
    this.pump.addEventListener("close", () => {
      this.endPump();
      if (!this.stopping) {
        this.emit({ type: "error", message: "the socket pump ended unexpectedly: the server stops" });
        void this.stop();
      }
    });
    this.pump.postMessage({ libraryPath: nativePath()!, handle: Number(ipc.handle) } satisfies PumpStart);
    this.sweep = setInterval(() => this.expire(), SWEEP_MS);
    this.emit({ type: "listening", socket, pid: process.pid });
  }

  /** Listens on the socket (its folder made private first); IN_USE when another server holds it. */
  static async start(options: ServerOptions = {}): Promise<ResidentServer> {
    const socket = options.socket ?? defaultSocketPath();
    try {
      await openCuda();
    } catch (e) {
      throw toLoadError(e);
    }
    prepareSocketFolder(socket);
    let ipc: IpcServer;
    try {
      ipc = IpcServer.listen(socket);
    } catch (e) {
      throw serverStartError(e, socket);
    }
    return new ResidentServer(socket, ipc, options);
  }

  /** Resolves when the server has ended (stop(), or its pump died). */
  get done(): Promise<void> {
    return this.ended;
  }

  emit(event: ServerEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // a log that fails must not take the server down
    }
  }

  /** The loader, opened for every device at the first load that needs it. */
  loaderFor(): Promise<Loader> {
    this.loader ??= (async () => {
      const devices = Array.from({ length: deviceCount() }, (_, i) => i);
      if (devices.length === 0) throw new LoadError("NO_CUDA_DEVICE", "no CUDA device: the driver lists none", "check nvidia-smi and CUDA_VISIBLE_DEVICES");
      return Loader.open({ devices, shareable: true, ...(this.options.workers !== undefined ? { workers: this.options.workers } : {}) });
    })();
    this.loader.catch(() => (this.loader = null)); // try again at the next load
    return this.loader;
  }

  /** What resident models may take on `device`. */
  budget(device: number): number {
    const b = this.options.budgets;
    if (typeof b === "number") return b;
    return b?.get(device) ?? memInfo(device).totalBytes;
  }

  /** Devices as the stats show them ([] without a GPU). */
  devices() {
    try {
      return listDevices().map((d) => ({ device: d.index, name: d.name, totalBytes: d.totalBytes, freeBytes: d.freeBytes, budgetBytes: this.budget(d.index), residentBytes: this.residents.residentBytes(d.index) }));
    } catch {
      return [];
    }
  }

  /** Frees a model the server keeps (the caller checked that nobody holds it, unless the server stops). */
  unload(r: Resident, reason: UnloadReason): number {
    const info = r.info();
    this.residents.remove(r);
    try {
      r.model.close();
    } catch (e) {
      this.emit({ type: "error", message: `freeing ${r.id} failed: ${toLoadError(e).message}` });
    }
    this.emit({ type: "unloaded", model: info, reason });
    return info.bytes;
  }

  /** Sends one frame to a connection (gone connections are fine: nothing to tell). */
  send(conn: number, message: object, bin?: Uint8Array, fds?: number[]): void {
    try {
      this.ipc.send(conn, JSON.stringify(message), bin, fds);
    } catch {
      // the connection closed meanwhile; the descriptors were closed by the library
    }
  }

  /** Open connections and frames still queued in the socket layer (leak checks). */
  socketCounts(): { connections: number; queued: number } {
    return this.ipc.counts();
  }

  /** Stops taking connections, frees every model, removes the socket. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.emit({ type: "stopping" });
      clearInterval(this.sweep);
      this.ipc.stop();
      await this.ended;
      for (const r of this.residents.all()) this.unload(r, "shutdown");
      this.ipc.close();
      const loader = await this.loader?.catch(() => null);
      await loader?.close();
    })();
    return this.stopping;
  }

  private expire(): void {
    const now = Date.now();
    for (const r of this.residents.all()) if (r.expired(now)) this.unload(r, "expired");
  }

  private onPump(m: PumpMessage): void {
    if (m.type === "failed") {
      this.emit({ type: "error", message: `the socket pump failed: ${m.message}` });
      return;
    }
    for (const e of m.events) this.onSocket(e);
  }

  private onSocket(e: IpcEvent): void {
    switch (e.type) {
      case "connected":
        this.connections.set(e.conn, new Connection(e.conn, e.pid, e.uid));
        this.emit({ type: "connected", conn: e.conn, pid: e.pid });
        break;
      case "closed": {
        const conn = this.connections.get(e.conn);
        if (!conn) break;
        this.connections.delete(e.conn);
        this.residents.releaseAll(conn);
        this.emit({ type: "disconnected", conn: e.conn, pid: conn.pid });
        break;
      }
      case "refused":
        this.emit({ type: "refused", pid: e.pid, uid: e.uid });
        break;
      case "protocol-error":
        this.emit({ type: "protocol-error", conn: e.conn, pid: e.pid, message: e.text });
        break;
      case "message":
        this.onRequest(e.conn, e.text);
        break;
      case "stopped":
        break;
    }
  }

  private onRequest(connId: number, text: string): void {
    const conn = this.connections.get(connId);
    if (!conn) return;
    this.requests++;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return this.fail(connId, null, { code: "BAD_REQUEST", message: "the request is not JSON", hint: "send one JSON object per frame (src/serve/protocol.ts)" });
    }
    const id = typeof (json as { id?: unknown })?.id === "number" ? (json as { id: number }).id : null;
    const parsed = Request.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const where = issue.path.length > 0 ? ` at ${issue.path.join(".")}` : "";
      return this.fail(connId, id, { code: "BAD_REQUEST", message: `the request does not follow protocol version ${PROTOCOL_VERSION}: ${issue.message}${where}`, hint: "see src/serve/protocol.ts for the requests a server takes" });
    }
    if (this.stopping) return this.fail(connId, parsed.data.id, { code: "SHUTTING_DOWN", message: "the server is stopping", hint: "start it again: bun run serve" });
    answer(this, conn, parsed.data).catch((err: unknown) => {
      this.emit({ type: "error", message: `a ${parsed.data.op} request failed inside the server: ${err instanceof Error ? err.stack : String(err)}` });
      this.fail(connId, parsed.data.id, { code: "INTERNAL", message: `the server failed on a ${parsed.data.op} request: ${err instanceof Error ? err.message : String(err)}`, hint: "this is a bug in gguf-vram; the server goes on; please report it" });
    });
  }

  fail(conn: number, id: number | null, error: ReplyError): void {
    this.send(conn, { v: PROTOCOL_VERSION, id, ok: false, error } satisfies Failure);
  }
}

function serverStartError(e: unknown, socket: string): Error {
  const code = (e as { code?: string }).code;
  if (code === "IN_USE") return new ServeError("IN_USE", `another server is running on ${socket}`, "use it (bun run serve list), stop it, or start this one with --socket PATH");
  return toLoadError(e, socket);
}
