// What `bun run serve` shows while it runs. In a terminal: the events as they
// happen, and under them a live block (redrawn every second) with every
// resident model — its devices and bytes, who holds it, how long it has been
// idle and how long it stays. Otherwise (--json, or not a terminal): one line
// per event, as JSON or as text.

import type { ResidentServer, ServerEvent } from "../serve/server.ts";
import { durationText } from "./serve-flags.ts";
import { bold, dim, green, humanBytes, red, yellow } from "./format.ts";
import type { TextSink } from "./output.ts";

const S_BAR = "│";

/** One line of text for an event (null: not worth a line). */
export function eventText(e: ServerEvent): string | null {
  switch (e.type) {
    case "listening":
      return `listening on ${e.socket} (pid ${e.pid})`;
    case "connected":
      return dim(`client connected: pid ${e.pid}`);
    case "disconnected":
      return dim(`client gone: pid ${e.pid}`);
    case "refused":
      return yellow(`refused a connection from another user (uid ${e.uid}, pid ${e.pid})`);
    case "protocol-error":
      return yellow(`dropped a client that broke the protocol (pid ${e.pid}): ${e.message}`);
    case "loading":
      return `loading ${e.path} for pid ${e.pid}…`;
    case "loaded":
      return e.resident ? dim(`${e.model.id} was resident: answered in ${e.ms.toFixed(2)} ms`) : green(`loaded ${e.model.id} (${e.model.path}, ${humanBytes(e.model.bytes)} on ${gpus(e.model.devices.map((d) => d.device))}) in ${e.ms.toFixed(0)} ms`);
    case "load-failed":
      return red(`loading ${e.path} failed: ${e.code}: ${e.message}`);
    case "attached":
      return `pid ${e.pid} attached to ${e.model} (${e.attachment})`;
    case "detached":
      return dim(`pid ${e.pid} detached from ${e.model} (${e.attachment})`);
    case "unloaded":
      return `${e.reason === "evicted" ? "evicted" : e.reason === "expired" ? "unloaded (keep-alive over)" : "unloaded"} ${e.model.id} (${e.model.path}), ${humanBytes(e.model.bytes)} freed${e.model.holders.length > 0 ? ` here; ${e.model.holders.length} client(s) keep their mapping until they detach` : ""}`;
    case "stopping":
      return "stopping: no new connections, freeing the models";
    case "error":
      return red(`error: ${e.message}`);
  }
}

const gpus = (devices: readonly number[]) => `GPU${devices.length === 1 ? "" : "s"} ${devices.join(", ")}`;

/** The live block: one line per model, and a line of totals. */
export function statusLines(server: ResidentServer, now = Date.now()): string[] {
  const models = server.residents.all().map((r) => r.info(now));
  const out = [bold(`${models.length} model${models.length === 1 ? "" : "s"} resident · ${server.connections.size} client${server.connections.size === 1 ? "" : "s"} · ${server.socket}`)];
  for (const m of models) {
    const where = m.devices.map((d) => `GPU ${d.device} ${humanBytes(d.allocBytes)}`).join(", ");
    const held = m.holders.length > 0 ? green(`held by ${m.holders.map((h) => `pid ${h.pid}${h.attachments > 1 ? ` ×${h.attachments}` : ""}`).join(", ")}`) : dim(`idle ${durationText(m.idleMs)} · stays ${durationText(m.keepAliveMs)}`);
    out.push(`  ${m.id}  ${m.path.split("/").pop()}  ${where}  ${held}`);
  }
  if (models.length === 0) out.push(dim("  none yet: bun run serve load FILE (from another terminal) loads one"));
  return out;
}

/** Prints events, and in a terminal keeps the live block under them. */
export class ServeView {
  private drawn = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private server: ResidentServer | null = null;

  constructor(
    private readonly out: TextSink,
    private readonly mode: "live" | "lines" | "json",
  ) {}

  attach(server: ResidentServer): void {
    this.server = server;
    if (this.mode === "live") {
      this.timer = setInterval(() => this.redraw(), 1000);
      this.redraw();
    }
  }

  event(e: ServerEvent): void {
    if (this.mode === "json") {
      this.out.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
      return;
    }
    const line = eventText(e);
    if (line === null) return;
    if (this.mode === "lines") return void this.out.write(`${line}\n`);
    this.clear();
    this.out.write(`${dim(S_BAR)}  ${line}\n`);
    this.redraw();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.mode === "live") this.clear();
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}F\x1b[J`);
    this.drawn = 0;
  }

  private redraw(): void {
    if (!this.server || this.mode !== "live") return;
    this.clear();
    const lines = statusLines(this.server);
    this.out.write(`${lines.map((l) => `${dim(S_BAR)}  ${l}`).join("\n")}\n`);
    this.drawn = lines.length;
  }
}
