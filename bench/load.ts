// bun run bench [--models 0.5b,7b,14b] [--sweep] [--reps N] [--device N]
//
// One run, one machine: the PCIe ceiling (pinned and pageable cudaMemcpy), the
// naive path, this loader warm and cold (end to end and its upload alone), the
// disk's sequential read, peak RSS, and CUDA context creation apart. Each figure
// is given as a ratio to the pinned ceiling. Writes build/bench/load.json.

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { boolFlag, intFlag, parseFlags, splitArgs, UsageError } from "../src/cli/args.ts";
import { runMain } from "../src/cli/main.ts";
import { deviceInfo, measureH2D, openCuda, versions } from "../src/cuda/index.ts";
import { REAL_SIZE_FAMILY_FIXTURES } from "../src/fixtures/family-models.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { fixtureModel } from "../src/fixtures/models.ts";
import { defaultTuning, Loader, toLoadError, type UploadTuning } from "../src/load/index.ts";
import type { Schedule } from "../src/cuda/index.ts";
import { diskReadGBps, evictFromPageCache, mmapUpload, naiveUpload, peakRss, resetPeakRss, warmPageCache } from "./probes.ts";
import { resultsDir, stats } from "./stats.ts";

const MODELS: Record<string, string> = {
  "0.5b": "qwen2.5-0.5b-instruct-q4_k_m",
  "7b": "qwen2.5-7b-instruct-q4_k_m",
  "14b": "qwen2.5-14b-instruct-q8_0",
};
const MiB = 1024 * 1024;

const Flags = z.object({
  models: z.string().regex(/^[\w.,]+$/, "must be a list of models: 0.5b,7b,14b").optional(),
  sweep: boolFlag,
  /** The real-size fixture of every family: warm end to end and upload against the ceiling. */
  families: boolFlag,
  /** Sweep these instead: workers x slots x MiB, comma-separated (e.g. 8x3x2,16x3x4). */
  configs: z.string().regex(/^(\d+x\d+x\d+(:(guided|tapered|chunks|shares))?,?)+$/, "must be a list of WORKERSxSLOTSxMiB[:schedule], e.g. 12x3x2,8x3x4:guided").optional(),
  /** Sweep with the file dropped from the page cache before each load. */
  cold: boolFlag,
  reps: intFlag("a number of repetitions", 1, 100),
  device: intFlag("a GPU index", 0, 1023),
  help: boolFlag,
});

const USAGE = "usage: bun run bench [--models 0.5b,7b,14b] [--families] [--sweep | --configs W×S×MiB[:tapered|guided|chunks|shares],… [--cold]] [--reps N] [--device N]";

interface LoadRun {
  endToEndMs: number;
  uploadMs: number;
  parseMs: number;
  verifyMs: number;
  bytes: number;
}

async function timeLoads(loader: Loader, path: string, reps: number, cold: boolean, verify = false): Promise<LoadRun[]> {
  const runs: LoadRun[] = [];
  for (let i = 0; i < reps; i++) {
    if (cold) evictFromPageCache(path);
    const { model, report } = await loader.load(path, { verify });
    runs.push({ endToEndMs: report.timings.total, uploadMs: report.timings.upload, parseMs: report.timings.parse, verifyMs: report.timings.verify, bytes: report.plan.uploadBytes });
    model.close();
  }
  return runs;
}

/** CUDA context creation, in a fresh process (it is per process). */
function contextCreationMs(device: number): number {
  const script = `import { openCuda, Device } from "${new URL("../src/cuda/index.ts", import.meta.url).pathname}";
await openCuda(); const t = performance.now(); Device.open(${device}); console.log(performance.now() - t);`;
  const p = Bun.spawnSync([process.execPath, "-e", script]);
  return Number(p.stdout.toString().trim());
}

async function main(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(Flags, splitArgs(argv, ["models", "reps", "device", "configs"]).flags);
  if (flags.help) return (console.log(USAGE), 0);
  const device = flags.device ?? 0;
  const models = (flags.models ?? "0.5b,7b").split(",").map((m) => {
    const name = MODELS[m];
    if (!name) throw new UsageError(`--models: no model ${m} (${Object.keys(MODELS).join(", ")})`);
    return [m, name] as const;
  });
  let gpu: ReturnType<typeof deviceInfo>;
  try {
    await openCuda();
    gpu = deviceInfo(device);
  } catch (e) {
    throw toLoadError(e); // the same one line (and exit code 3 without a GPU) as bun run load
  }
  const ctxMs = stats([0, 1, 2].map(() => contextCreationMs(device)));
  const ceiling = measureH2D(device, 512 * MiB, true, 20);
  const pageable = measureH2D(device, 512 * MiB, false, 5);
  const ratio = (gbps: number) => `${((gbps / ceiling) * 100).toFixed(0)}%`;
  const gbps = (bytes: number, ms: number) => bytes / 1e6 / ms;
  const lines: string[] = [];
  const out: Record<string, unknown> = {
    date: new Date().toISOString(), gpu: gpu.name, cpu: cpus()[0]?.model, cores: cpus().length, cuda: versions(),
    contextCreationMs: ctxMs, pinnedGBps: ceiling, pageableGBps: pageable, tuning: defaultTuning(), models: {},
  };
  lines.push(`${gpu.name} · ${cpus()[0]?.model} × ${cpus().length} · ${new Date().toISOString().slice(0, 10)}`);
  lines.push(`CUDA context creation (apart): ${ctxMs.median.toFixed(0)} ms median of 3 processes`);
  lines.push("");

  const rows: Record<string, Record<string, string>> = {};
  const put = (row: string, model: string, value: string) => {
    (rows[row] ??= {})[model] = value;
    console.error(`${model}: ${row}: ${value}`);
  };
  for (const [short] of models) {
    put("pinned cudaMemcpy (ceiling)", short, `${ceiling.toFixed(1)} GB/s`);
    put("pageable cudaMemcpy", short, `${pageable.toFixed(1)} GB/s (${ratio(pageable)})`);
  }

  const reps = flags.reps ?? 9;
  const loader = await Loader.open({ device });
  try {
    // With --configs, only the sweep runs.
    for (const [short, name] of flags.configs ? [] : models) {
      const t = performance.now();
      const path = await ensureModelFixture(name);
      console.error(`${short}: fixture ready in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      const entry: Record<string, unknown> = {};

      warmPageCache(path);
      const naive = await naiveUpload(path, device);
      put("naive: Bun.file slice → pageable copy", short, `${gbps(naive.bytes, naive.ms).toFixed(1)} GB/s (${ratio(gbps(naive.bytes, naive.ms))})`);

      warmPageCache(path);
      await timeLoads(loader, path, 2, false); // untimed: the workers' JIT warms up on the first loads
      resetPeakRss();
      const rssBefore = process.memoryUsage().rss;
      const warm = await timeLoads(loader, path, reps, false);
      const rssGrowth = peakRss() - rssBefore;
      const e2e = stats(warm.map((r) => r.endToEndMs));
      const up = stats(warm.map((r) => gbps(r.bytes, r.uploadMs)));
      put("loader, warm: end to end (parse → VRAM)", short, `${e2e.median.toFixed(1)} ms`);
      put("loader, warm: upload phase", short, `${up.median.toFixed(1)} GB/s (${ratio(up.median)})`);
      put("loader, warm: parse", short, `${stats(warm.map((r) => r.parseMs)).median.toFixed(1)} ms`);
      put("peak RSS growth during loads", short, `${(rssGrowth / MiB).toFixed(0)} MiB`);

      // --verify: the parallel re-read of the file and the GPU checksums, after the upload (target ≤ 1.5× the upload).
      const verified = await timeLoads(loader, path, reps, false, true);
      const verifyMs = stats(verified.map((r) => r.verifyMs)).median;
      const uploadMs = stats(warm.map((r) => r.uploadMs)).median;
      put("loader, warm: --verify adds", short, `${verifyMs.toFixed(1)} ms (${(verifyMs / uploadMs).toFixed(2)}× the upload; target ≤ 1.5×)`);

      // The disk varies from run to run: alternate disk reads and cold loads, take medians.
      const coldReps = warm[0]!.bytes > 8e9 ? 1 : 3;
      const disks: number[] = [];
      const cold: LoadRun[] = [];
      for (let i = 0; i < coldReps; i++) {
        disks.push(diskReadGBps(path));
        cold.push(...(await timeLoads(loader, path, 1, true)));
      }
      const disk = stats(disks).median;
      const coldE2e = stats(cold.map((r) => r.endToEndMs)).median;
      const coldUp = stats(cold.map((r) => gbps(r.bytes, r.uploadMs))).median;
      put("disk sequential read (cold, 1 reader)", short, `${disk.toFixed(2)} GB/s`);
      put("loader, cold: end to end", short, `${coldE2e.toFixed(0)} ms`);
      put("loader, cold: upload phase", short, `${coldUp.toFixed(2)} GB/s (${((coldUp / disk) * 100).toFixed(0)}% of disk)`);

      // Bun.mmap returns one ArrayBuffer, and one ArrayBuffer is at most 4 GiB.
      const mm = Bun.file(path).size < 4 * 1024 * MiB ? (warmPageCache(path), await mmapUpload(path, device, 64 * MiB)) : null;
      put("mmap + register 64 MiB chunks, 1 thread", short, mm ? `${gbps(mm.bytes, mm.ms).toFixed(1)} GB/s (pinning ${mm.pinMs.toFixed(0)} ms)` : "n/a (file > 4 GiB)");

      Bun.gc(true); // unmaps the file, or its pages could not be dropped from the cache later

      Object.assign(entry, { file: path, bytes: warm[0]!.bytes, naive, warm, endToEnd: e2e, uploadGBps: up, rssGrowth, verified, verifyMs, mmap: mm, diskGBps: disks, cold });
      (out.models as Record<string, unknown>)[short] = entry;
    }
  } finally {
    await loader.close();
  }

  // What a user sees: the whole command, process start to exit, CUDA context included.
  const small = flags.configs ? undefined : models.find(([s]) => s === "0.5b");
  if (small) {
    const path = await ensureModelFixture(small[1]);
    warmPageCache(path);
    const cli = new URL("../src/cli/load.ts", import.meta.url).pathname;
    const walls = [0, 1, 2, 3, 4].map(() => {
      const t = performance.now();
      const p = Bun.spawnSync([process.execPath, cli, "--yes", "--model", path], { env: { ...process.env, NO_COLOR: "1" } });
      if (p.exitCode !== 0) throw new Error(`bun run load failed: ${p.stderr.toString()}`);
      return performance.now() - t;
    });
    const w = stats(walls);
    put("`bun run load --yes --model …` wall time", "0.5b", `${(w.median / 1000).toFixed(2)} s (min ${(w.min / 1000).toFixed(2)} s)`);
    out.cliWallMs = w;
  }

  if (flags.sweep || flags.configs) out.sweep = await sweep(device, MODELS[models.at(-1)![0]]!, rows, flags.configs, flags.cold ?? false);
  if (flags.families) out.families = await familyTable(device, ceiling, reps, lines);

  const shorts = models.map(([s]) => s);
  lines.push("", `| | ${shorts.join(" | ")} |`, `|---|${shorts.map(() => "---").join("|")}|`);
  for (const [row, byModel] of Object.entries(rows)) lines.push(`| ${row} | ${shorts.map((s) => byModel[s] ?? "").join(" | ")} |`);
  console.log(lines.join("\n"));
  mkdirSync(resultsDir(), { recursive: true });
  const file = join(resultsDir(), "load.json");
  writeFileSync(file, JSON.stringify(out, null, 2));
  console.log(`\nwrote ${file}`);
  return 0;
}

/**
 * The real-size fixture of every family, one at a time (written, read once into
 * the page cache, loaded warm, then removed unless another part of the bench
 * uses it): warm end to end and the upload's throughput against the pinned
 * ceiling of this run. Target: ≥ 85% of the ceiling for every file over 4 GB.
 */
async function familyTable(device: number, ceiling: number, reps: number, lines: string[]) {
  const keep = new Set(Object.values(MODELS));
  const loader = await Loader.open({ device });
  const results = [];
  const table = ["| model | file | tensors | warm end to end | warm upload | of the ceiling |", "|---|---|---|---|---|---|"];
  try {
    for (const name of REAL_SIZE_FAMILY_FIXTURES) {
      const t = performance.now();
      const path = await ensureModelFixture(name);
      const written = performance.now() - t;
      try {
        warmPageCache(path);
        await timeLoads(loader, path, 2, false);
        const runs = await timeLoads(loader, path, reps, false);
        const size = Bun.file(path).size;
        const e2e = stats(runs.map((r) => r.endToEndMs)).median;
        const up = stats(runs.map((r) => r.bytes / 1e6 / r.uploadMs)).median;
        const share = up / ceiling;
        const met = size <= 4e9 ? "" : share >= 0.85 ? " ✓" : " ✗ (target 85%)";
        const { model } = await loader.load(path);
        const tensors = model.tensors.size;
        model.close();
        table.push(`| ${fixtureModel(name).title.split(",")[0]} | ${(size / 1e9).toFixed(2)} GB | ${tensors} | ${e2e.toFixed(1)} ms | ${up.toFixed(1)} GB/s | ${(share * 100).toFixed(0)}%${met} |`);
        console.error(`families: ${name}: ${e2e.toFixed(1)} ms, ${up.toFixed(1)} GB/s (${(share * 100).toFixed(0)}%), written in ${(written / 1000).toFixed(1)} s`);
        results.push({ name, bytes: size, tensors, runs, endToEndMs: e2e, uploadGBps: up, shareOfCeiling: share });
      } finally {
        if (!keep.has(name)) {
          rmSync(path, { force: true });
          rmSync(`${path}.stamp`, { force: true });
        }
      }
    }
  } finally {
    await loader.close();
  }
  lines.push("", `real-size families (warm; pinned ceiling ${ceiling.toFixed(1)} GB/s in this run):`, ...table);
  return results;
}

/** Workers, slot size and ring depth, one at a time around the default, on the largest model asked for. */
async function sweep(device: number, name: string, rows: Record<string, Record<string, string>>, list: string | undefined, cold: boolean) {
  const path = await ensureModelFixture(name);
  warmPageCache(path);
  const base = defaultTuning();
  const configs: UploadTuning[] = list
    ? list.split(",").filter(Boolean).map((c) => {
        const [size, schedule] = c.split(":") as [string, Schedule | undefined];
        const [workers, slots, mib] = size.split("x").map(Number) as [number, number, number];
        return { workers, slots, slotBytes: mib * MiB, schedule: schedule ?? "tapered" };
      })
    : [
        ...[1, 2, 4, 8, 12, 16].map((workers) => ({ ...base, workers })),
        ...[1, 2, 4, 16, 32].map((m) => ({ ...base, slotBytes: m * MiB })),
        ...[2, 4, 6].map((slots) => ({ ...base, slots })),
      ];
  const results = [];
  for (const c of configs) {
    const t = performance.now();
    const loader = await Loader.open({ device, ...c });
    const openMs = performance.now() - t;
    try {
      await timeLoads(loader, path, 1, false); // untimed warm-up
      const runs = await timeLoads(loader, path, cold ? 3 : 5, cold);
      const up = stats(runs.map((r) => r.bytes / 1e6 / r.uploadMs)).median;
      const e2e = stats(runs.map((r) => r.endToEndMs)).median;
      results.push({ ...c, openMs, uploadGBps: up, endToEndMs: e2e });
      const row = `sweep${cold ? " (cold)" : ""} ${c.workers}w × ${c.slots} × ${(c.slotBytes ?? 0) / MiB} MiB, ${c.schedule ?? "tapered"}`;
      rows[row] = { [Object.keys(MODELS).find((k) => MODELS[k] === name)!]: `${up.toFixed(1)} GB/s, ${e2e.toFixed(0)} ms (ring setup ${openMs.toFixed(0)} ms)` };
      console.error(`${row}: ${up.toFixed(1)} GB/s, ${e2e.toFixed(0)} ms (ring setup ${openMs.toFixed(0)} ms)`);
    } finally {
      await loader.close();
    }
  }
  return results;
}

if (import.meta.main) runMain(main, { command: "bun run bench" });
