// `bun run serve load|list|unload|stats`: a running server, asked from another
// terminal. A load shows the same plan, fit check and progress as `bun run
// load` (the plan is made here, from the file; the free VRAM is the server's).

import type { DeviceInfo } from "../cuda/index.ts";
import type { ServeClient } from "../serve/client.ts";
import type { ModelInfo } from "../serve/protocol.ts";
import { bold, dim, green, humanBytes, table } from "./format.ts";
import { fitLines, planLines } from "./load-report.ts";
import { progressText } from "./load-summary.ts";
import { planFile, planFor, type Target } from "./load-steps.ts";
import type { Io } from "./load-batch.ts";
import { durationText } from "./serve-flags.ts";

export interface RemoteLoad {
  readonly path: string;
  readonly target: Target;
  readonly verify: boolean;
  readonly unchecked: boolean;
  readonly keepAliveMs?: number;
  readonly json: boolean;
}

/** The server's devices as the plan's fit check wants them. */
function serverDevices(stats: Awaited<ReturnType<ServeClient["stats"]>>): DeviceInfo[] {
  return stats.devices.map((d) => ({ index: d.device, name: d.name, computeCapability: "", multiprocessors: 0, pciBusId: "", totalBytes: d.totalBytes, freeBytes: d.freeBytes }));
}

export async function remoteLoad(client: ServeClient, flags: RemoteLoad, io: Io): Promise<number> {
  const devices = serverDevices(await client.stats());
  const planned = await planFile(flags.path, { unchecked: flags.unchecked });
  try {
    const plan = planFor(planned, flags.target, devices);
    if (!flags.json) {
      io.out(planLines(plan, devices).join("\n"));
      io.out(fitLines(plan, devices).join("\n"));
    }
  } finally {
    planned.file.close();
  }
  const t0 = performance.now();
  const target = flags.target;
  const placement = target.kind === "single" ? { device: target.device } : target.kind === "replicas" ? { replicas: target.devices } : { devices: target.devices, ...(target.split ? { split: target.split } : {}) };
  try {
    const r = await client.load(flags.path, {
      ...placement,
      verify: flags.verify,
      unchecked: flags.unchecked,
      ...(flags.keepAliveMs !== undefined ? { keepAliveMs: flags.keepAliveMs } : {}),
      onProgress: io.progress && !flags.json ? (done, total, devs) => io.progress!(progressText(done, total, devs, (performance.now() - t0) / 1000)) : undefined,
    });
    io.progress?.(null);
    if (flags.json) io.out(JSON.stringify(r, null, 2));
    else io.out(r.resident ? `${bold(r.model.id)} was resident already: answered in ${r.ms.toFixed(2)} ms` : `${green("resident")} as ${bold(r.model.id)}: ${modelLine(r.model)} · loaded in ${r.ms.toFixed(0)} ms by the server`);
    return 0;
  } finally {
    io.progress?.(null);
  }
}

function modelLine(m: ModelInfo): string {
  return `${humanBytes(m.bytes)} on ${m.devices.map((d) => `GPU ${d.device}`).join(", ")} · ${m.tensors} tensors${m.verified ? " · verified" : ""} · stays ${durationText(m.keepAliveMs)} after its last detach`;
}

export function listLines(models: readonly ModelInfo[]): string[] {
  if (models.length === 0) return [dim("no model is resident")];
  const rows = models.map((m) => [
    m.id,
    m.path,
    m.devices.map((d) => `GPU ${d.device}`).join(","),
    humanBytes(m.bytes),
    m.holders.length > 0 ? `held by ${m.holders.map((h) => `pid ${h.pid}`).join(", ")}` : `idle ${durationText(m.idleMs)}`,
    `stays ${durationText(m.keepAliveMs)}`,
  ]);
  return [table([[dim("id"), dim("file"), dim("on"), dim("VRAM"), dim("clients"), dim("keep-alive")], ...rows], [3])];
}

export function statsLines(stats: Awaited<ReturnType<ServeClient["stats"]>>): string[] {
  const out = [`server pid ${stats.pid} · up ${durationText(stats.uptimeMs)} · ${stats.clients} client${stats.clients === 1 ? "" : "s"} · ${stats.requests} requests`];
  out.push(table([[dim("GPU"), dim("name"), dim("free"), dim("resident"), dim("budget")], ...stats.devices.map((d) => [String(d.device), d.name, humanBytes(d.freeBytes), humanBytes(d.residentBytes), humanBytes(d.budgetBytes)])], [2, 3, 4]));
  out.push(...listLines(stats.models));
  return out;
}
