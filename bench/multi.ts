// bun run bench:multi [--model 14b|7b|0.5b] [--reps N] [--quick | --configs W×S×KiB[:huge],…]
//
// Several GPUs of one host, one run: the ceilings first — pinned cudaMemcpy to
// 1, 2, 4… GPUs at once (a thread per GPU) and pread from the page cache by 1 to
// 64 threads — then the split upload on 1, 2, 4… GPUs against the lesser of the
// two, with a sweep of ring shapes that shows where the time goes, then
// replicas of the 7B (one GPU alone, and every GPU by each route). Writes
// build/bench/multi.json.

import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { boolFlag, intFlag, parseFlags, splitArgs } from "../src/cli/args.ts";
import { runMain } from "../src/cli/main.ts";
import { deviceCount, deviceInfo, measureH2DMany, measureRead, openCuda, versions } from "../src/cuda/index.ts";
import { debugUploadMode } from "../src/cuda/testing.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { defaultTuning, Loader, toLoadError, type LoadError, type LoadOptions, type UploadTuning } from "../src/load/index.ts";
import { warmPageCache } from "./probes.ts";
import { resultsDir, stats } from "./stats.ts";

const MODELS: Record<string, string> = { "0.5b": "qwen2.5-0.5b-instruct-q4_k_m", "7b": "qwen2.5-7b-instruct-q4_k_m", "14b": "qwen2.5-14b-instruct-q8_0" };
const KiB = 1024;
const MiB = 1024 * KiB;

const Flags = z.object({
  model: z.enum(["0.5b", "7b", "14b"], { message: "must be 0.5b, 7b or 14b" }).optional(),
  reps: intFlag("a number of repetitions", 1, 100),
  /** Only the default tuning: no sweep of ring shapes. */
  quick: boolFlag,
  /** These ring shapes on several GPUs instead of the sweep: workers x slots x KiB, e.g. 12x1x1536,16x2x512:huge. */
  configs: z.string().regex(/^(\d+x\d+x\d+(:huge)?,?)+$/, "must be a list of WORKERSxSLOTSxKiB[:huge], e.g. 12x1x1536,16x2x512:huge").optional(),
  help: boolFlag,
});
const USAGE = "usage: bun run bench:multi [--model 14b|7b|0.5b] [--reps N] [--quick | --configs W×S×KiB[:huge],…]";

/** The last-level cache, from sysfs (what a ring must fit in to stay out of DRAM); null when unknown. */
function llcBytes(): number | null {
  try {
    const text = readFileSync("/sys/devices/system/cpu/cpu0/cache/index3/size", "utf8").trim();
    const m = /^(\d+)([KMG]?)$/.exec(text);
    return m ? Number(m[1]) * { "": 1, K: KiB, M: MiB, G: 1024 * MiB }[m[2] as "" | "K" | "M" | "G"] : null;
  } catch {
    return null;
  }
}

/** Device sets to measure: 1, 2, 4, 8… GPUs, and all of them. */
function deviceSets(n: number): number[][] {
  const sizes = new Set<number>();
  for (let k = 1; k <= n; k *= 2) sizes.add(k);
  sizes.add(n);
  return [...sizes].sort((a, b) => a - b).map((k) => Array.from({ length: k }, (_, i) => i));
}

const gbps = (bytes: number, ms: number) => bytes / 1e6 / ms;

interface Timed {
  /** The bytes each load uploads. */
  bytes: number;
  uploadGBps: number;
  uploadMs: number;
  peerMs: number;
  totalMs: number;
}

/** Warm-up, then `reps` loads with `options`: medians. */
async function timeLoads(loader: Loader, path: string, options: LoadOptions, reps: number): Promise<Timed> {
  (await loader.load(path, options)).model.close();
  const runs: { up: number; upMs: number; peer: number; total: number }[] = [];
  let bytes = 0;
  for (let i = 0; i < reps; i++) {
    const { model, report } = await loader.load(path, options);
    model.close();
    bytes = report.plan.uploadBytes;
    runs.push({ up: gbps(report.plan.uploadBytes, report.timings.upload), upMs: report.timings.upload, peer: report.timings.peer, total: report.timings.upload + report.timings.peer });
  }
  return { bytes: runs.length > 0 ? bytes : 0, uploadGBps: stats(runs.map((r) => r.up)).median, uploadMs: stats(runs.map((r) => r.upMs)).median, peerMs: stats(runs.map((r) => r.peer)).median, totalMs: stats(runs.map((r) => r.total)).median };
}

/**
 * An upload in a benchmark mode moves its bytes and then fails with BENCH_MODE
 * (it loaded nothing): its rate is the plan's bytes over the time from the
 * upload phase's start to that failure.
 */
async function timeHalfUploads(loader: Loader, path: string, options: LoadOptions, reps: number, bytes: number): Promise<number> {
  const rates: number[] = [];
  for (let i = 0; i <= reps; i++) {
    let started = 0;
    const failed = await loader.load(path, { ...options, onPhase: (p) => p === "upload" && (started = performance.now()) }).then(
      ({ model }) => (model.close(), null),
      (e: unknown) => e as LoadError,
    );
    const ms = performance.now() - started;
    if (failed?.code !== "BENCH_MODE") throw failed ?? new Error("an upload in a benchmark mode reported a model");
    if (i > 0) rates.push(gbps(bytes, ms));
  }
  return stats(rates).median;
}

const shape = (t: Required<UploadTuning>) => `${t.workers}w × ${t.slots} × ${t.slotBytes >= MiB ? `${t.slotBytes / MiB} MiB` : `${t.slotBytes / KiB} KiB`}${t.hugePages ? " huge" : ""}`;

async function main(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(Flags, splitArgs(argv, ["model", "reps", "configs"]).flags);
  if (flags.help) return (console.log(USAGE), 0);
  let n: number;
  try {
    await openCuda();
    n = deviceCount();
  } catch (e) {
    throw toLoadError(e);
  }
  const reps = flags.reps ?? 5;
  const all = Array.from({ length: n }, (_, i) => i);
  const sets = deviceSets(n);
  const llc = llcBytes();
  const lines: string[] = [];
  const say = (...text: string[]) => {
    for (const line of text) {
      lines.push(line);
      console.error(line);
    }
  };
  const out: Record<string, unknown> = {
    date: new Date().toISOString(), gpus: all.map((d) => deviceInfo(d).name), cpu: cpus()[0]?.model, cores: cpus().length, memoryBytes: totalmem(), llcBytes: llc, cuda: versions(),
  };
  say(`${n} × ${deviceInfo(0).name} · ${cpus()[0]?.model} × ${cpus().length} · LLC ${llc ? `${(llc / MiB).toFixed(0)} MiB` : "?"} · ${new Date().toISOString().slice(0, 10)}`);

  // ── the ceilings ──
  const h2d = sets.map((set) => ({ gpus: set.length, ...measureH2DMany(set, 256 * MiB, 10) }));
  say("", "pinned cudaMemcpy, a thread per GPU, all at once (the PCIe ceiling):");
  for (const c of h2d) say(`  ${c.gpus} GPU${c.gpus > 1 ? "s" : ""}: ${c.total.toFixed(1)} GB/s in total (each ${c.perDevice.map((x) => x.toFixed(1)).join(", ")})`);

  const model = MODELS[flags.model ?? "14b"]!;
  const t = performance.now();
  const path = await ensureModelFixture(model);
  const bytes = Bun.file(path).size;
  say("", `${model}: ${(bytes / 1e9).toFixed(2)} GB (fixture ready in ${((performance.now() - t) / 1000).toFixed(1)} s)`);
  warmPageCache(path);
  const fd = openSync(path, "r");
  const threads = [1, 4, 8, 16, 32, 48, 64, 96].filter((k) => k <= Math.max(cpus().length, 1));
  const reads: { threads: number; chunk: number; gbps: number }[] = [];
  try {
    for (const k of threads) reads.push({ threads: k, chunk: 2 * MiB, gbps: measureRead(fd, bytes, k, 2 * MiB) });
    for (const chunk of [256 * KiB, 512 * KiB]) reads.push({ threads: cpus().length, chunk, gbps: measureRead(fd, bytes, cpus().length, chunk) });
  } finally {
    closeSync(fd);
  }
  const readCeiling = Math.max(...reads.map((r) => r.gbps));
  say("", "pread from the page cache into private buffers (the read ceiling):");
  say(`  ${reads.map((r) => `${r.threads} thr × ${r.chunk / KiB} KiB: ${r.gbps.toFixed(1)}`).join(" · ")} GB/s`);
  out.ceilings = { h2d, reads, readCeiling };

  // ── the split upload on 1, 2, 4… GPUs ──
  const tunings = (gpus: number): Required<UploadTuning>[] => {
    const base = defaultTuning({}, gpus);
    if (flags.quick || gpus === 1) return [base];
    if (flags.configs) {
      const given = flags.configs.split(",").filter(Boolean).map((c) => {
        const [size, huge] = c.split(":");
        const [workers, slots, kib] = size!.split("x").map(Number) as [number, number, number];
        return defaultTuning({ workers, slots, slotBytes: kib * KiB, hugePages: huge === "huge" }, gpus);
      });
      return [base, ...given];
    }
    const per = (w: number) => Math.max(1, Math.min(w, Math.floor(cpus().length / gpus)));
    // Around the default: the single-GPU shape (rings 4× too big), then the same 72 MiB in flight
    // spread over fewer or more workers and slots, a smaller ring, and huge pages.
    const slot = (bytes: number) => Math.max(256 * KiB, Math.floor(bytes / (64 * KiB)) * 64 * KiB);
    const budget = (w: number, s: number) => slot((72 * MiB) / (w * gpus * s));
    const variants: UploadTuning[] = [
      { workers: 12, slots: 3, slotBytes: 2 * MiB },
      { workers: 8, slots: 3, slotBytes: budget(8, 3) },
      { workers: 16, slots: 3, slotBytes: budget(16, 3) },
      { workers: 12, slots: 4, slotBytes: budget(12, 4) },
      { workers: 12, slots: 2, slotBytes: budget(12, 2) },
      { workers: 12, slots: 3, slotBytes: slot((36 * MiB) / (12 * gpus * 3)) },
      { workers: 12, slots: 3, hugePages: true },
    ];
    const seen = new Set([shape(base)]);
    return [base, ...variants.map((v) => defaultTuning({ ...v, workers: per(v.workers!) }, gpus)).filter((v) => !seen.has(shape(v)) && seen.add(shape(v)))];
  };
  const decomposition: Record<string, unknown>[] = [];
  const split: Record<string, unknown>[] = [];
  say("", `split upload of ${model} (warm, median of ${reps}); the target is 80% of the lesser ceiling:`);
  say("| GPUs | workers × slots × slot | ring total | upload | of the lesser ceiling | pinned ceiling | read ceiling |");
  say("|---|---|---|---|---|---|---|");
  for (const set of sets) {
    const ceiling = h2d.find((c) => c.gpus === set.length)!.total;
    const lesser = Math.min(ceiling, readCeiling);
    for (const tuning of tunings(set.length)) {
      const loader = await Loader.open({ devices: set, ...tuning });
      try {
        const options: LoadOptions = set.length === 1 ? { device: 0 } : { devices: set, split: set.map(() => 1) };
        const r = await timeLoads(loader, path, options, reps);
        const ring = tuning.workers * set.length * tuning.slots * tuning.slotBytes;
        const share = r.uploadGBps / lesser;
        const isDefault = shape(tuning) === shape(defaultTuning({}, set.length));
        say(`| ${set.length} | ${shape(tuning)}${isDefault ? " (default)" : ""} | ${(ring / MiB).toFixed(0)} MiB | ${r.uploadGBps.toFixed(1)} GB/s | ${(share * 100).toFixed(0)}%${share >= 0.8 ? " ✓" : ""} | ${ceiling.toFixed(1)} | ${readCeiling.toFixed(1)} |`);
        split.push({ gpus: set.length, tuning, ringBytes: ring, ...r, pinnedCeiling: ceiling, readCeiling, shareOfLesser: share, isDefault });
        if (isDefault) {
          // Where the time goes: the same upload doing only its reads, then only its copies.
          const halves: Record<string, number> = {};
          for (const mode of ["read", "copy"] as const) {
            debugUploadMode(mode);
            try {
              halves[mode] = await timeHalfUploads(loader, path, options, reps, r.bytes);
            } finally {
              debugUploadMode("normal");
            }
          }
          decomposition.push({ gpus: set.length, tuning, both: r.uploadGBps, readOnly: halves.read, copyOnly: halves.copy });
        }
      } finally {
        await loader.close();
      }
    }
  }
  out.split = split;
  out.decomposition = decomposition;
  say("", "where the time goes (default shape; the same upload doing only its reads into the pinned slots, or only its copies out of them):");
  for (const d of decomposition) say(`  ${d.gpus} GPU${d.gpus === 1 ? "" : "s"}: reads alone ${(d.readOnly as number).toFixed(1)} GB/s · copies alone ${(d.copyOnly as number).toFixed(1)} GB/s · both ${(d.both as number).toFixed(1)} GB/s`);

  // ── replicas of the 7B ──
  const seven = await ensureModelFixture(MODELS["7b"]!);
  warmPageCache(seven);
  const replicas: Record<string, unknown>[] = [];
  const loader = await Loader.open({ devices: all });
  try {
    const one = await timeLoads(loader, seven, { device: 0 }, reps);
    say("", `replicas of ${MODELS["7b"]} (warm, median of ${reps}); target ≤ 1.5× one GPU's time:`);
    say(`  1 GPU: ${one.totalMs.toFixed(1)} ms`);
    replicas.push({ gpus: 1, route: "pcie", ...one });
    for (const set of sets.filter((s) => s.length > 1)) {
      for (const route of ["peer", "host"] as const) {
        const r = await timeLoads(loader, seven, { replicas: set, replicaRoute: route }, reps);
        const ratio = r.totalMs / one.totalMs;
        say(`  ${set.length} GPUs by the ${route} route: ${r.totalMs.toFixed(1)} ms (${r.uploadMs.toFixed(1)} upload + ${r.peerMs.toFixed(1)} exchange) = ${ratio.toFixed(2)}× one${ratio <= 1.5 ? " ✓" : ""}`);
        replicas.push({ gpus: set.length, route, ...r, ratioToOne: ratio });
      }
    }
  } finally {
    await loader.close();
  }
  out.replicas = replicas;

  console.log(lines.join("\n"));
  mkdirSync(resultsDir(), { recursive: true });
  const file = join(resultsDir(), "multi.json");
  writeFileSync(file, JSON.stringify(out, null, 2));
  console.log(`\nwrote ${file}`);
  return 0;
}

if (import.meta.main) runMain(main, { command: "bun run bench:multi" });
