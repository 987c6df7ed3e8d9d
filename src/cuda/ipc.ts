// The resident-model socket from Bun (cuda/gguf_vram.h: gv_ipc_*). Bun cannot
// pass file descriptors over a socket, so every byte and descriptor goes through
// the library: a server's side, whose wait a Worker makes while the JS thread
// answers, and a client's side. The frames are cuda/wire.h's, the messages
// src/serve/protocol.ts's.

import type { Pointer } from "bun:ffi";
import { CudaError } from "./errors.ts";
import { native } from "./native.ts";
import { call } from "./runtime.ts";

export type IpcEventType = "connected" | "message" | "closed" | "refused" | "protocol-error" | "stopped";

/** What the server's wait reports (gv_ipc_event_type). */
export interface IpcEvent {
  readonly type: IpcEventType;
  /** The connection's id: never reused while the server lives (0 for "stopped"). */
  readonly conn: number;
  /** The peer's pid and uid (SO_PEERCRED). */
  readonly pid: number;
  readonly uid: number;
  /** A message's JSON; for "closed", "refused" and "protocol-error" what happened, in one sentence. */
  readonly text: string;
}

/** A frame from the server: its JSON, its binary part, and the descriptors that came with it (the caller's to close). */
export interface IpcFrame {
  readonly json: string;
  readonly bin: Uint8Array;
  readonly fds: number[];
}

const EVENT_TYPES: Record<number, IpcEventType> = { 1: "connected", 2: "message", 3: "closed", 4: "refused", 5: "protocol-error", 6: "stopped" };
const EVENT_HEAD_BYTES = 24;

/** A wait buffer that holds the largest request (64 KiB) many times over. */
export const IPC_EVENT_BUFFER_BYTES = 1 << 20;

function cPath(path: string): Uint8Array {
  if (path === "" || path.includes("\0")) throw new CudaError("INVALID_ARGUMENT", 0, 0, `the socket path ${JSON.stringify(path)} is empty or holds a NUL`);
  return new TextEncoder().encode(`${path}\0`);
}

const decoder = new TextDecoder();

function decodeEvents(bytes: Uint8Array): IpcEvent[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const events: IpcEvent[] = [];
  for (let at = 0; at + EVENT_HEAD_BYTES <= bytes.length; ) {
    const payload = Number(view.getBigUint64(at + 16, true));
    const start = at + EVENT_HEAD_BYTES;
    events.push({
      type: EVENT_TYPES[view.getUint32(at, true)] ?? "protocol-error",
      conn: view.getUint32(at + 4, true),
      pid: view.getUint32(at + 8, true),
      uid: view.getUint32(at + 12, true),
      text: decoder.decode(bytes.subarray(start, start + payload)),
    });
    at = start + ((payload + 7) & ~7);
  }
  return events;
}

// ─── the server's side ────────────────────────────────────────────────────────

export class IpcServer {
  #handle: Pointer | 0;

  private constructor(handle: Pointer) {
    this.#handle = handle;
  }

  /**
   * Listens at `path` (its folder must exist and be the caller's, mode 0700):
   * IN_USE when another live server holds it; a dead server's socket file is replaced.
   */
  static listen(path: string): IpcServer {
    const out = new BigUint64Array(1);
    call(native().gv_ipc_listen(cPath(path), out));
    return new IpcServer(Number(out[0]!) as Pointer);
  }

  /** The native handle, for the Worker in this process that calls IpcServer.wait with it. */
  get handle(): Pointer {
    return this.#live();
  }

  /**
   * Blocks up to `timeoutMs` (-1: no limit) until something happens, then returns every event that
   * fits `buffer` (IPC_EVENT_BUFFER_BYTES is plenty); [] after a timeout. Meanwhile it accepts,
   * reads and sends. One thread at a time; the pump Worker's call. After stop(), every call
   * returns at once with a "stopped" event.
   */
  static wait(handle: Pointer, timeoutMs: number, buffer: Uint8Array): IpcEvent[] {
    const written = new BigUint64Array(1);
    call(native().gv_ipc_wait(handle, timeoutMs, buffer, BigInt(buffer.length), written));
    return decodeEvents(buffer.subarray(0, Number(written[0]!)));
  }

  /**
   * Queues one frame for connection `conn`; never blocks. The descriptors are the server's from
   * here on (closed once sent, or at once when this throws): DISCONNECTED when the connection is gone.
   */
  send(conn: number, json: string, bin?: Uint8Array, fds: readonly number[] = []): void {
    const handle = this.#handle;
    if (handle === 0) {
      for (const fd of fds) closeFd(fd);
      throw new CudaError("CLOSED", 0, 0, "this server was closed");
    }
    const text = new TextEncoder().encode(json);
    const binary = bin && bin.length > 0 ? bin : null;
    const descriptors = fds.length > 0 ? new Int32Array(fds) : null;
    call(native().gv_ipc_send(handle, conn, text.length > 0 ? text : null, BigInt(text.length), binary, BigInt(binary?.length ?? 0), descriptors, fds.length));
  }

  /** Closes connection `conn` once what is queued for it is sent; a "closed" event follows. */
  disconnect(conn: number): void {
    call(native().gv_ipc_disconnect(this.#live(), conn));
  }

  /** Stops taking connections and wakes the waiting Worker, which gets "stopped". */
  stop(): void {
    call(native().gv_ipc_stop(this.#live()));
  }

  /** Open connections and frames still queued: both 0 once every client has gone. */
  counts(): { connections: number; queued: number } {
    const connections = new BigUint64Array(1);
    const queued = new BigUint64Array(1);
    call(native().gv_ipc_counts(this.#live(), connections, queued));
    return { connections: Number(connections[0]!), queued: Number(queued[0]!) };
  }

  get closed(): boolean {
    return this.#handle === 0;
  }

  /**
   * Sends what it can without waiting, closes every connection, removes the socket file and
   * releases the lock. Idempotent. Call it after stop(), once the Worker's wait has returned.
   */
  close(): void {
    if (this.#handle === 0) return;
    call(native().gv_ipc_free(this.#handle));
    this.#handle = 0;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(): Pointer {
    if (this.#handle === 0) throw new CudaError("CLOSED", 0, 0, "this server was closed");
    return this.#handle;
  }
}

// ─── a client's side ──────────────────────────────────────────────────────────

/** A client nobody can reach any more is closed when collected: no other thread uses it. */
const unclosedClients = new FinalizationRegistry<Pointer>((handle) => native().gv_ipc_close(handle));

export class IpcClient {
  #handle: Pointer | 0;

  private constructor(handle: Pointer) {
    this.#handle = handle;
    unclosedClients.register(this, handle, this);
  }

  /** Connects to the server at `path`: NO_SERVER when nothing listens there. */
  static connect(path: string): IpcClient {
    const out = new BigUint64Array(1);
    call(native().gv_ipc_connect(cPath(path), out));
    return new IpcClient(Number(out[0]!) as Pointer);
  }

  /** Sends one request frame (JSON only, at most 64 KiB); blocks until it is written. */
  request(json: string): void {
    const text = new TextEncoder().encode(json);
    call(native().gv_ipc_request(this.#live(), text.length > 0 ? text : null, BigInt(text.length)));
  }

  /**
   * Waits up to `timeoutMs` (0: only what has arrived; -1: no limit) for a whole frame; null when
   * none came in time. Blocks this thread meanwhile.
   */
  poll(timeoutMs: number): IpcFrame | null {
    const handle = this.#live();
    const gv = native();
    const ready = new Int32Array(1);
    const jsonBytes = new BigUint64Array(1);
    const binBytes = new BigUint64Array(1);
    const fdCount = new Uint32Array(1);
    call(gv.gv_ipc_poll(handle, timeoutMs, ready, jsonBytes, binBytes, fdCount));
    if (ready[0] === 0) return null;
    const json = new Uint8Array(Number(jsonBytes[0]!));
    const bin = new Uint8Array(Number(binBytes[0]!));
    const fds = new Int32Array(fdCount[0]!);
    call(gv.gv_ipc_take(handle, json.length > 0 ? json : null, bin.length > 0 ? bin : null, fds.length > 0 ? fds : null));
    return { json: decoder.decode(json), bin, fds: [...fds] };
  }

  get closed(): boolean {
    return this.#handle === 0;
  }

  /** Closes the connection (descriptors received and not taken are closed). Idempotent. */
  close(): void {
    if (this.#handle === 0) return;
    const handle = this.#handle;
    this.#handle = 0;
    unclosedClients.unregister(this);
    call(native().gv_ipc_close(handle));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(): Pointer {
    if (this.#handle === 0) throw new CudaError("CLOSED", 0, 0, "this client was closed");
    return this.#handle;
  }
}

/** Closes a file descriptor this process received and does not keep. */
export function closeFd(fd: number): void {
  call(native().gv_close_fd(fd));
}
