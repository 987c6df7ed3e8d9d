// How the server answers each request (protocol.ts): load (or find resident),
// list, attach (descriptors and the tensor table), detach, unload, stats.

import { closeSync } from "node:fs";
import { memInfo } from "../cuda/index.ts";
import { LoadError, ModelFile, planLoad, toLoadError, type LoadPlan, type Placement as LoadPlacement } from "../load/index.ts";
import { encodeTensorTable, PROTOCOL_VERSION, type LoadEvent, type Placement, type Reply, type Request } from "./protocol.ts";
import { fileKey, granules, placementKey, Resident, type Connection } from "./residents.ts";
import { DEFAULT_KEEP_ALIVE_MS, type ResidentServer } from "./server.ts";

type RequestOf<O extends Request["op"]> = Extract<Request, { op: O }>;
/** Omit over each member of a union (plain Omit would keep only the keys they share). */
type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type ReplyBody = Without<Reply, "v" | "id" | "ok">;

const VERSION = "gguf-vram 0.1.0";

/** Answers `req` from `conn` (a failure reply for every error the request itself caused). */
export async function answer(server: ResidentServer, conn: Connection, req: Request): Promise<void> {
  const reply = (r: ReplyBody, bin?: Uint8Array, fds?: number[]) => server.send(conn.id, { v: PROTOCOL_VERSION, id: req.id, ok: true, ...r }, bin, fds);
  try {
    switch (req.op) {
      case "hello":
        conn.client = req.client;
        return reply({ op: "hello", server: VERSION, pid: process.pid, protocol: PROTOCOL_VERSION });
      case "load":
        return reply(await load(server, conn, req));
      case "list":
        return reply({ op: "list", models: server.residents.all().map((r) => r.info()) });
      case "attach":
        return attach(server, conn, req, reply);
      case "detach": {
        const r = conn.attachments.get(req.attachment);
        if (!server.residents.release(req.attachment, conn)) {
          throw new Refusal("NOT_ATTACHED", `this connection holds no attachment ${req.attachment}`, "detach each attachment once, through the connection that made it");
        }
        server.emit({ type: "detached", model: r!.id, attachment: req.attachment, pid: conn.pid });
        if (r!.keepAliveMs === 0 && r!.holds.size === 0) server.unload(r!, "expired");
        return reply({ op: "detach" });
      }
      case "unload": {
        const r = found(server, req.model);
        if (r.holds.size > 0) {
          const holders = r.info().holders.map((h) => `pid ${h.pid} (${h.attachments} attachment${h.attachments === 1 ? "" : "s"})`);
          throw new Refusal("HELD", `${r.id} is held by ${holders.join(", ")}`, "it is unloaded once they detach (or exit); its keep-alive starts then");
        }
        return reply({ op: "unload", freedBytes: server.unload(r, "request") });
      }
      case "stats":
        return reply({ op: "stats", pid: process.pid, uptimeMs: Date.now() - server.startedAt, devices: server.devices(), models: server.residents.all().map((r) => r.info()), clients: server.connections.size, requests: server.requests });
    }
  } catch (e) {
    if (e instanceof Refusal) return server.fail(conn.id, req.id, { code: e.code, message: e.message, hint: e.hint });
    if (e instanceof LoadError) return server.fail(conn.id, req.id, replyOf(e));
    throw e;
  }
}

/** A request the server turns down: its code goes to the client as it is. */
class Refusal extends Error {
  constructor(
    readonly code: "NO_SUCH_MODEL" | "NOT_ATTACHED" | "HELD" | "OUT_OF_VRAM" | "BAD_REQUEST",
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

function replyOf(e: LoadError) {
  if (e.code === "NO_CUDA_DEVICE") return { code: "NO_CUDA_DEVICE" as const, message: e.message, hint: e.hint };
  if (e.code === "OUT_OF_VRAM") return { code: "OUT_OF_VRAM" as const, message: e.message, hint: e.hint };
  return { code: "LOAD_FAILED" as const, message: e.message, hint: e.hint, cause: e.code };
}

function found(server: ResidentServer, ref: string): Resident {
  const r = server.residents.find(ref);
  if (!r) throw new Refusal("NO_SUCH_MODEL", `no resident model is ${ref}`, "load it first (bun run serve load FILE); bun run serve list shows what is resident");
  return r;
}

// ─── load ─────────────────────────────────────────────────────────────────────

async function load(server: ResidentServer, conn: Connection, req: RequestOf<"load">) {
  const t0 = performance.now();
  const keep = placementKey(req.placement, req.unchecked ?? false);
  let key: string;
  try {
    key = fileKey(req.path);
  } catch {
    throw new LoadError("FILE_NOT_FOUND", `${req.path}: no such file on the server's machine`, "give the path of a .gguf file the server can read");
  }
  const resident = server.residents.findLoaded(key, keep);
  if (resident) return residentReply(server, resident, req, t0);
  // Cold loads go one at a time, each seeing the room the previous one left (a resident model answers at once).
  const turn = server.coldLoads.then(() => coldLoad(server, conn, req, keep, t0));
  server.coldLoads = turn.catch(() => {});
  return turn;
}

async function residentReply(server: ResidentServer, r: Resident, req: RequestOf<"load">, t0: number) {
  r.lastUsedAt = Date.now();
  if (req.keepAliveMs !== undefined) r.keepAliveMs = req.keepAliveMs;
  if (req.verify && !r.verified) {
    await (await server.loaderFor()).verify(r.model);
    r.verified = true;
  }
  const ms = performance.now() - t0;
  server.emit({ type: "loaded", model: r.info(), ms, resident: true });
  return { op: "load" as const, model: r.info(), resident: true, ms };
}

async function coldLoad(server: ResidentServer, conn: Connection, req: RequestOf<"load">, keep: string, t0: number) {
  // Another request may have loaded it while this one waited its turn.
  const already = server.residents.findLoaded(fileKey(req.path), keep);
  if (already) return residentReply(server, already, req, t0);
  server.emit({ type: "loading", path: req.path, pid: conn.pid });
  const event = (e: Without<LoadEvent, "v" | "id">) => req.progress && server.send(conn.id, { v: PROTOCOL_VERSION, id: req.id, ...e });
  try {
    const loader = await server.loaderFor();
    using file = await ModelFile.open(req.path, { unchecked: req.unchecked });
    const placement = loadPlacement(req.placement);
    makeRoom(server, planLoad(file.gguf, file.check, placement));
    const { model, report } = await loader.load(file, {
      ...placementOptions(placement),
      verify: req.verify ?? false,
      unchecked: req.unchecked ?? false,
      shareable: true,
      onPhase: (phase) => event({ event: "phase", phase }),
      onProgress: (done, total, devices) => event({ event: "progress", done, total, devices: [...devices] }),
    });
    const keys = file.stats.map((st) => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`);
    const architecture = report.check.config?.architecture ?? file.gguf.string("general.architecture") ?? null;
    const r = new Resident(server.residents.newId(), model, keep, keys, architecture, req.verify ?? false, req.keepAliveMs ?? server.options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS);
    server.residents.add(r);
    const ms = performance.now() - t0;
    server.emit({ type: "loaded", model: r.info(), ms, resident: false });
    return { op: "load" as const, model: r.info(), resident: false, ms };
  } catch (e) {
    const err = e instanceof Refusal ? e : toLoadError(e, req.path);
    server.emit({ type: "load-failed", path: req.path, code: err.code, message: err.message });
    throw err;
  }
}

/** The loader's placement for a request's: a split without proportions follows free VRAM now, as the plan shows it. */
function loadPlacement(p: Placement | undefined): LoadPlacement {
  if (!p) return { kind: "single", device: 0 };
  if ("device" in p) return { kind: "single", device: p.device };
  if ("replicas" in p) return { kind: "replicas", devices: p.replicas };
  return { kind: "split", devices: p.devices, split: p.split ?? p.devices.map((d) => memInfo(d).freeBytes) };
}

function placementOptions(p: LoadPlacement) {
  if (p.kind === "single") return { device: p.device };
  if (p.kind === "replicas") return { replicas: p.devices };
  return { devices: p.devices, split: p.split };
}

/**
 * Room for `plan` on every device it uses: within the device's budget and its
 * free VRAM, evicting models nobody holds, least recently used first. When even
 * that cannot make room, OUT_OF_VRAM says who holds what.
 */
function makeRoom(server: ResidentServer, plan: LoadPlan): void {
  for (const d of plan.devices) {
    const need = granules(d.arenaBytes);
    const budget = server.budget(d.device);
    const fits = () => server.residents.residentBytes(d.device) + need <= budget && memInfo(d.device).freeBytes >= need;
    while (!fits()) {
      const victim = server.residents.evictable().find((r) => r.footprint.has(d.device));
      if (!victim) {
        const gib = (b: number) => `${(b / 1024 ** 3).toFixed(1)} GiB`;
        const held = server.residents.heldOn(d.device);
        throw new Refusal(
          "OUT_OF_VRAM",
          `the model needs ${gib(need)} on device ${d.device}, which has ${gib(memInfo(d.device).freeBytes)} free and ${gib(budget - server.residents.residentBytes(d.device))} left of the server's budget${held.length > 0 ? `; held: ${held.join("; ")}` : ""}`,
          held.length > 0 ? "models that clients hold are never evicted: detach them, or load onto another device" : "free GPU memory (nvidia-smi shows who holds it), or raise the server's --budget",
        );
      }
      server.unload(victim, "evicted");
    }
  }
}

// ─── attach ───────────────────────────────────────────────────────────────────

function attach(server: ResidentServer, conn: Connection, req: RequestOf<"attach">, reply: (r: ReplyBody, bin?: Uint8Array, fds?: number[]) => void): void {
  const r = found(server, req.model);
  const parts = r.model.parts;
  r.tensorTable ??= encodeTensorTable(
    parts.map((p) => ({ device: p.device, allocBytes: p.arena.allocBytes, bytes: p.arena.bytes })),
    parts.flatMap((p, part) => [...p.tensors.values()].map((t) => ({ part, name: t.name, type: t.type, shape: t.shape, offset: t.offset, bytes: t.bytes, fileOffset: t.fileOffset, shard: t.shard, alias: t.aliasOf !== undefined }))),
  );
  const table = r.tensorTable;
  const fds: number[] = [];
  try {
    for (const p of parts) fds.push(p.arena.export());
  } catch (e) {
    for (const fd of fds) closeQuietly(fd);
    throw toLoadError(e);
  }
  const attachment = server.residents.hold(r, conn);
  server.emit({ type: "attached", model: r.id, attachment, pid: conn.pid });
  reply({ op: "attach", model: r.info(), attachment }, table, fds);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
