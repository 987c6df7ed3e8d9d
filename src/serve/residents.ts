// The models a server keeps in VRAM, who holds them, and when they go: a model
// someone holds (an attachment through a live connection) is never evicted or
// unloaded; one nobody holds stays for its keep-alive time after it was last
// let go (like ollama's keep_alive), and is evicted earlier, least recently
// used first, when a load needs its room.

import { statSync } from "node:fs";
import type { Model } from "../load/index.ts";
import type { ModelInfo, Placement } from "./protocol.ts";

const MiB = 1024 * 1024;
/** Shareable allocations come in 2 MiB granules. */
export const granules = (bytes: number) => Math.ceil(bytes / (2 * MiB)) * 2 * MiB;

/** A client's connection to the server. */
export class Connection {
  /** Attachments made through this connection, by id. */
  readonly attachments = new Map<string, Resident>();
  client = "";

  constructor(
    readonly id: number,
    readonly pid: number,
    readonly uid: number,
  ) {}
}

/** What identifies a file: if any of these changed, it is another file. */
export function fileKey(path: string): string {
  const st = statSync(path);
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

/** One placement in one spelling, so the same request twice finds the same model. */
export function placementKey(p: Placement | undefined, unchecked: boolean): string {
  const where = !p ? "device:0" : "device" in p ? `device:${p.device}` : "replicas" in p ? `replicas:${p.replicas.join(",")}` : `devices:${p.devices.join(",")}${p.split ? `/${p.split.join(",")}` : ""}`;
  return `${where}${unchecked ? ";unchecked" : ""}`;
}

export class Resident {
  /** Attachments that hold it, by id, and the connection each came through. */
  readonly holds = new Map<string, Connection>();
  /** Its tensor table as attach replies carry it (protocol.ts), made at the first attach. */
  tensorTable: Uint8Array | null = null;
  readonly loadedAt = Date.now();
  lastUsedAt = Date.now();
  /** Since when nobody holds it (Date.now()); null while held. */
  idleSince: number | null = Date.now();

  constructor(
    readonly id: string,
    readonly model: Model,
    readonly placementKey: string,
    /** fileKey() of each of its files, by shard. */
    readonly fileKeys: readonly string[],
    readonly architecture: string | null,
    public verified: boolean,
    public keepAliveMs: number,
  ) {}

  /** Bytes of shareable memory it takes on each device. */
  get footprint(): Map<number, number> {
    const out = new Map<number, number>();
    for (const p of this.model.parts) out.set(p.device, (out.get(p.device) ?? 0) + p.arena.allocBytes);
    return out;
  }

  /** Whether its keep-alive ran out by `now`. */
  expired(now: number): boolean {
    return this.holds.size === 0 && this.keepAliveMs >= 0 && this.idleSince !== null && now - this.idleSince >= this.keepAliveMs;
  }

  info(now = Date.now()): ModelInfo {
    const m = this.model;
    const byPid = new Map<number, { pid: number; client: string; attachments: number }>();
    for (const conn of this.holds.values()) {
      const h = byPid.get(conn.id) ?? { pid: conn.pid, client: conn.client, attachments: 0 };
      h.attachments++;
      byPid.set(conn.id, h);
    }
    return {
      id: this.id,
      path: m.source.path,
      files: m.source.files.map((f) => ({ path: f.path, fileSize: f.fileSize, mtimeMs: f.mtimeMs })),
      architecture: this.architecture,
      kind: m.kind,
      devices: m.parts.map((p) => ({ device: p.device, bytes: p.arena.bytes, allocBytes: p.arena.allocBytes, tensors: p.tensors.size, layers: p.layers ? [p.layers[0], p.layers[1]] : null })),
      bytes: m.vramBytes,
      tensors: m.tensors.size,
      verified: this.verified,
      loadedAt: this.loadedAt,
      lastUsedAt: this.lastUsedAt,
      idleMs: this.idleSince === null ? 0 : now - this.idleSince,
      keepAliveMs: this.keepAliveMs,
      holders: [...byPid.values()],
    };
  }
}

/** Every resident model, and the rules for holding and evicting them. */
export class Residents {
  private readonly byId = new Map<string, Resident>();
  private nextModel = 1;
  private nextAttachment = 1;

  newId(): string {
    return `m${this.nextModel++}`;
  }

  all(): Resident[] {
    return [...this.byId.values()];
  }

  add(r: Resident): void {
    this.byId.set(r.id, r);
  }

  /** Takes it out of the registry (the caller closes its model). */
  remove(r: Resident): void {
    this.byId.delete(r.id);
  }

  /** A model by id ("m3"), or by the path of one of its files (as given, or the file's identity). */
  find(ref: string): Resident | undefined {
    const byId = this.byId.get(ref);
    if (byId) return byId;
    if (!ref.startsWith("/")) return undefined;
    let key: string | null = null;
    try {
      key = fileKey(ref);
    } catch {
      // gone from the disk: match by path alone
    }
    return this.all().find((r) => r.model.source.files.some((f) => f.path === ref) || (key !== null && r.fileKeys.includes(key)));
  }

  /** The resident copy of file `key` with that placement, if there is one. */
  findLoaded(key: string, placement: string): Resident | undefined {
    return this.all().find((r) => r.placementKey === placement && r.fileKeys.includes(key));
  }

  hold(r: Resident, conn: Connection): string {
    const id = `a${this.nextAttachment++}`;
    r.holds.set(id, conn);
    r.idleSince = null;
    r.lastUsedAt = Date.now();
    conn.attachments.set(id, r);
    return id;
  }

  /** Ends attachment `id` of `conn`; false when the connection holds no such attachment. */
  release(id: string, conn: Connection): boolean {
    const r = conn.attachments.get(id);
    if (!r) return false;
    conn.attachments.delete(id);
    r.holds.delete(id);
    r.lastUsedAt = Date.now();
    if (r.holds.size === 0) r.idleSince = Date.now();
    return true;
  }

  /** A connection is gone: every attachment made through it is let go. */
  releaseAll(conn: Connection): void {
    for (const id of [...conn.attachments.keys()]) this.release(id, conn);
  }

  /** Bytes resident models take on `device`. */
  residentBytes(device: number): number {
    return this.all().reduce((n, r) => n + (r.footprint.get(device) ?? 0), 0);
  }

  /** Models nobody holds, least recently used first: what may be evicted. */
  evictable(): Resident[] {
    return this.all()
      .filter((r) => r.holds.size === 0)
      .sort((a, b) => a.lastUsedAt - b.lastUsedAt);
  }

  /** "m1 (qwen…gguf, 4.4 GiB on device 0) held by pid 1234 (2 attachments)" for each held model on `device`. */
  heldOn(device: number): string[] {
    return this.all()
      .filter((r) => r.holds.size > 0 && r.footprint.has(device))
      .map((r) => {
        const holders = r.info().holders.map((h) => `pid ${h.pid} (${h.attachments} attachment${h.attachments === 1 ? "" : "s"})`);
        return `${r.id} (${r.model.source.path}, ${(r.footprint.get(device)! / 1024 ** 3).toFixed(1)} GiB on device ${device}) held by ${holders.join(", ")}`;
      });
  }
}
