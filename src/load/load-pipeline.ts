// One load, phase by phase: parse → CUDA ready → plan → allocate → upload →
// (exchange, for replicas by the peer route) → (verify) → Model.
//
// Ownership is structural. The load's scope owns what it took for itself (the
// file it opened, the abort listener) and frees it when the load ends, either
// way; the arenas go on a stack of their own, which the load disposes if
// anything fails — an error of ours, a worker's, a CUDA call's, or a caller's
// callback — and which it hands to the Model whole (DisposableStack.move) when
// nothing did. So every resource has one owner at every moment, and is freed
// exactly once.
//
// Every phase ends at a checkpoint: an abort, or a callback that threw, stops
// the load there (and the work in flight — upload jobs, peer copies, verify's
// reads — stops at once), with everything it took freed on every device.

import { Arena, memInfo } from "../cuda/index.ts";
import { LoadError, toLoadError } from "./errors.ts";
import { Model } from "./model.ts";
import { ModelFile } from "./model-file.ts";
import { targetOf, type DeviceProgress, type LoadOptions, type LoadPhase } from "./options.ts";
import type { Placement } from "./placement.ts";
import { planLoad, uploadSpans, type DevicePlan, type LoadPlan } from "./plan.ts";
import type { DeviceJob, UploadPool } from "./pool.ts";
import { chooseRoute, exchangeShares, shareRange, shareSpans, type ReplicaRoute } from "./replicas.ts";
import type { LoadReport, LoadTimings, DeviceVram } from "./report.ts";
import { newUploadJob } from "./spans.ts";
import { LoadStop, unlessStopped } from "./stop.ts";
import { verifyAgainst } from "./verify.ts";

const MiB = 1024 * 1024;

export async function runLoad(pool: UploadPool, source: string | ModelFile, options: LoadOptions): Promise<{ model: Model; report: LoadReport }> {
  const t0 = performance.now();
  const target = targetOf(options, pool.options.devices);
  const timings: LoadTimings = { cudaWait: 0, cudaInit: 0, parse: 0, plan: 0, allocate: 0, upload: 0, peer: 0, verify: 0, total: 0 };
  let clock = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = now - clock;
    clock = now;
    return ms;
  };

  using scope = new DisposableStack();
  const stop = scope.use(new LoadStop(options.signal));
  const phase = (p: LoadPhase) => {
    stop.check();
    stop.callback("onPhase", options.onPhase, p);
    stop.check();
    lap();
  };
  let file: ModelFile | null = typeof source === "string" ? null : source;
  try {
    phase("parse");
    if (typeof source === "string") file = scope.use(await ModelFile.open(source, { unchecked: options.unchecked }));
    const opened = file!;
    timings.parse = lap();

    phase("cuda");
    timings.cudaInit = await unlessStopped(pool.ready, stop);
    await unlessStopped(pool.requireWorkers(target.devices), stop);
    timings.cudaWait = lap();

    phase("plan");
    // A split without proportions follows free VRAM, as llama.cpp's does.
    const before = target.devices.map(memInfoOrThrow);
    const placement: Placement =
      target.kind === "single" ? { kind: "single", device: target.devices[0]! }
      : target.kind === "replicas" ? { kind: "replicas", devices: target.devices }
      : { kind: "split", devices: target.devices, split: target.split ?? before.map((v) => v.freeBytes) };
    const plan = planLoad(opened.gguf, opened.check, placement);
    const route = target.kind === "replicas" ? chooseRoute(target.devices, options.replicaRoute) : "pcie";
    const parts = uploadParts(plan, route, pool.options.slotBytes);
    const jobs = parts.map((spans) => newUploadJob(spans, opened.fds, Math.max(1, pool.workers), pool.options.schedule));
    scope.defer(stop.onStop(() => jobs.forEach((j) => j.shared.stop())));
    timings.plan = lap();

    phase("allocate");
    // Every device is checked before anything is allocated; then a failure on any frees them all.
    if (!options.skipVramCheck) plan.devices.forEach((d, i) => checkFreeVram(d, before[i]!, plan.devices.length > 1));
    using arenas = new DisposableStack();
    const owned: Arena[] = [];
    for (const d of plan.devices) {
      stop.check();
      owned.push(arenas.use(createArena(d.device, d.arenaBytes, options.shareable ?? false)));
    }
    timings.allocate = lap();

    phase("upload");
    const work: DeviceJob[] = plan.devices.map((d, i) => ({ device: d.device, arena: owned[i]!.handle, job: jobs[i]! }));
    // Bytes that reached each device: over its own link, then (peer route) from the other devices.
    const read = plan.devices.map(() => 0);
    const received = plan.devices.map(() => 0);
    const progress = () => {
      const devices: DeviceProgress[] = plan.devices.map((d, i) => ({ device: d.device, done: read[i]! + received[i]!, total: d.uploadBytes }));
      stop.callback("onProgress", options.onProgress, devices.reduce((n, d) => n + d.done, 0), plan.uploadBytes, devices);
    };
    await pool.upload(work, opened.path, (_, perJob) => {
      perJob.forEach((b, i) => (read[i] = b));
      progress();
    });
    stop.check();
    timings.upload = lap();

    if (route === "peer") {
      phase("exchange");
      await exchangeShares(owned, parts.map(shareRange), stop, (bytes) => {
        bytes.forEach((b, i) => (received[i] = b));
        progress();
      });
      stop.check();
      timings.peer = lap();
    }
    opened.checkUnchanged();
    const after = target.devices.map(memInfoOrThrow);

    const stats = opened.stats;
    const files = opened.paths.map((path, i) => ({ path, fileSize: stats[i]!.size, mtimeMs: stats[i]!.mtimeMs }));
    // From here the model owns the arenas; the load owns the model until it returns it.
    using handed = new DisposableStack();
    const model = handed.use(
      new Model(
        plan.kind,
        plan.devices.map((d, i) => ({ device: d.device, arena: owned[i]!, layers: d.layers, ledger: d.ledger, tensors: d.tensors })),
        { ...files[0]!, files },
        arenas.move(),
      ),
    );
    if (options.verify) {
      phase("verify");
      await verifyAgainst(model, opened.fds, pool.workers > 0 ? pool : null, stop);
      timings.verify = lap();
    }
    stop.check();
    timings.total = performance.now() - t0;
    const vram = target.devices.map((device, i) => ({ device, freeBefore: before[i]!.freeBytes, freeAfter: after[i]!.freeBytes, totalVram: before[i]!.totalBytes }));
    const sum = (f: (v: DeviceVram) => number) => vram.reduce((n, v) => n + f(v), 0);
    const report: LoadReport = {
      path: opened.path, gguf: opened.gguf, check: opened.check, plan, device: target.devices[0]!, workers: pool.workers, route,
      freeBefore: sum((v) => v.freeBefore), freeAfter: sum((v) => v.freeAfter), totalVram: sum((v) => v.totalVram), vram, timings,
    };
    handed.move(); // the caller's now
    return { model, report };
  } catch (e) {
    throw stop.explain(e, file?.path);
  }
}

/**
 * What each device reads from the file: its own tensors (one GPU, a split, or
 * replicas by the host route), or, for replicas by the peer route, a contiguous
 * share of the whole model's spans (the shares are exchanged afterwards).
 */
function uploadParts(plan: LoadPlan, route: "pcie" | ReplicaRoute, slotBytes: number) {
  if (route !== "peer") return plan.devices.map((d) => uploadSpans(d, slotBytes));
  return shareSpans(uploadSpans(plan.devices[0]!, slotBytes), plan.devices.length);
}

function createArena(device: number, bytes: number, shareable: boolean): Arena {
  try {
    return Arena.create(device, bytes, { shareable });
  } catch (e) {
    throw toLoadError(e);
  }
}

function memInfoOrThrow(device: number) {
  try {
    return memInfo(device);
  } catch (e) {
    throw toLoadError(e);
  }
}

/** cudaMalloc hands out 2 MiB pages; each arena needs that much free, rounded up. */
function checkFreeVram(d: DevicePlan, vram: { freeBytes: number; totalBytes: number }, several: boolean): void {
  const needed = Math.ceil(d.arenaBytes / (2 * MiB)) * 2 * MiB;
  if (needed <= vram.freeBytes) return;
  const m = (b: number) => (b / MiB).toFixed(1);
  const what = several ? `its part on device ${d.device}${d.layers ? ` (layers ${d.layers[0]}–${d.layers[1]})` : ""} needs` : "the model needs";
  throw new LoadError(
    "OUT_OF_VRAM",
    `${what} ${m(d.arenaBytes)} MiB of VRAM; device ${d.device} has ${m(vram.freeBytes)} MiB free of ${m(vram.totalBytes)} MiB`,
    several
      ? "free GPU memory (nvidia-smi shows which processes hold it), give that device a smaller share (--split), or add a device"
      : "free GPU memory (nvidia-smi shows which processes hold it), or pick a smaller model or another --device",
  );
}
