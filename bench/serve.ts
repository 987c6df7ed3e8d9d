// bun run bench:serve [--models 0.5b,7b] [--repeat N]
//
// What resident models save, one run, one machine: for each model, the whole
// `bun run load` process and a warm library load beside the server's cold load
// (shareable VRAM must not slow the upload), a load request for a model already
// resident, and attaching from a separate C process (examples/attach.cu: from
// the connect call to pointers usable on every device; the client's own CUDA
// context creation apart). With 2+ GPUs, the same for a split over every GPU.
// Writes build/bench/serve.json.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ensureExample } from "../build.ts";
import { intFlag, parseFlags, splitArgs } from "../src/cli/args.ts";
import { runMain } from "../src/cli/main.ts";
import { deviceCount, deviceInfo, openCuda } from "../src/cuda/index.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { Loader, toLoadError } from "../src/load/index.ts";
import { ServeClient } from "../src/serve/client.ts";
import { socketFolder, startServer } from "../test/support/serve-process.ts";
import { warmPageCache } from "./probes.ts";
import { resultsDir, stats } from "./stats.ts";

const MODELS: Record<string, string> = { "0.5b": "qwen2.5-0.5b-instruct-q4_k_m", "7b": "qwen2.5-7b-instruct-q4_k_m" };
const ROOT = new URL("..", import.meta.url).pathname;

const Flags = z.object({
  models: z.string().regex(/^[\w.,]+$/, "must be a list of models: 0.5b,7b").optional(),
  repeat: intFlag("a number of attaches per measurement", 10, 10_000),
  reps: intFlag("a number of loads per measurement", 1, 50),
  help: z.boolean().optional(),
});

const median = (xs: number[]) => stats(xs).median;
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(0.99 * (xs.length - 1) + 0.5))]!;

/** `bun run load --yes --json` of `path`, a fresh process each time: wall milliseconds. */
function processLoadMs(path: string, reps: number): number[] {
  return Array.from({ length: reps }, () => {
    const t = performance.now();
    const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli/load.ts"), "--yes", "--json", "--model", path], { stdout: "ignore", stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`bun run load failed: ${p.stderr.toString()}`);
    return performance.now() - t;
  });
}

async function attachSamples(example: string, model: string, socket: string, repeat: number): Promise<{ attachMs: number[]; detachMs: number[]; contextMs: number }> {
  const p = Bun.spawn([example, model, "--socket", socket, "--repeat", String(repeat), "--json"], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`the attach example failed: ${err || out}`);
  return JSON.parse(out);
}

async function main(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(Flags, splitArgs(argv, ["models", "repeat", "reps"]).flags);
  try {
    await openCuda();
    deviceCount();
  } catch (e) {
    throw toLoadError(e);
  }
  const repeat = flags.repeat ?? 200;
  const reps = flags.reps ?? 5;
  const names = (flags.models ?? "0.5b,7b").split(",");
  const example = await ensureExample({ quiet: true });
  const device = deviceInfo(0);
  const lines = [`bench:serve on ${device.name}; attaches by ${repeat} from a separate C process; loads median of ${reps}, warm page cache`, ""];
  lines.push("| model | size | `bun run load` process | library load (warm) | server cold load | resident load request | attach p50 / p99 | detach p50 | client's CUDA context |");
  lines.push("|---|---|---|---|---|---|---|---|---|");
  const out: Record<string, unknown>[] = [];
  const folder = socketFolder();
  const server = await startServer(folder.socket, [], [process.execPath, join(ROOT, "src/cli/serve.ts"), "--socket", folder.socket, "--json", "--keep-alive", "-1"]);
  try {
    const client = await ServeClient.connect({ socket: folder.socket, client: "bench:serve" });
    const loader = await Loader.open();
    try {
      for (const name of names) {
        const path = await ensureModelFixture(MODELS[name] ?? name);
        warmPageCache(path);
        const processMs = processLoadMs(path, reps);
        const libraryMs: number[] = [];
        for (let i = 0; i <= reps; i++) {
          const { model, report } = await loader.load(path);
          model.close();
          if (i > 0) libraryMs.push(report.timings.total);
        }
        const coldMs: number[] = [];
        let id = "";
        for (let i = 0; i <= reps; i++) {
          const r = await client.load(path);
          if (i > 0) coldMs.push(r.ms); // the first also opened the server's workers
          id = r.model.id;
          if (i < reps) await client.unload(id);
        }
        const residentMs: number[] = [];
        for (let i = 0; i < 50; i++) {
          const t = performance.now();
          const r = await client.load(path);
          residentMs.push(performance.now() - t);
          if (!r.resident) throw new Error("a second load was not answered from the resident model");
        }
        const attach = await attachSamples(example, id, folder.socket, repeat);
        const bytes = (await client.list()).find((m) => m.id === id)!.bytes;
        const row = { model: MODELS[name] ?? name, bytes, processMs: median(processMs), libraryMs: median(libraryMs), serverColdMs: median(coldMs), residentRequestMs: median(residentMs), attachP50: median(attach.attachMs), attachP99: p99(attach.attachMs), detachP50: median(attach.detachMs), contextMs: attach.contextMs };
        out.push(row);
        lines.push(`| ${row.model} | ${(bytes / 1e9).toFixed(2)} GB | ${row.processMs.toFixed(0)} ms | ${row.libraryMs.toFixed(1)} ms | ${row.serverColdMs.toFixed(1)} ms (${((row.serverColdMs / row.libraryMs - 1) * 100).toFixed(1)}%) | ${row.residentRequestMs.toFixed(2)} ms | ${row.attachP50.toFixed(2)} / ${row.attachP99.toFixed(2)} ms | ${row.detachP50.toFixed(2)} ms | ${row.contextMs.toFixed(0)} ms |`);
        await client.unload(id);
      }
      const n = deviceCount();
      if (n >= 2) {
        const all = Array.from({ length: n }, (_, i) => i);
        const seven = await ensureModelFixture(MODELS["7b"]!);
        const { model } = await client.load(seven, { devices: all });
        const attach = await attachSamples(example, model.id, folder.socket, repeat);
        out.push({ model: `${MODELS["7b"]} split over ${n} GPUs`, attachP50: median(attach.attachMs), attachP99: p99(attach.attachMs) });
        lines.push("", `split of the 7B over ${n} GPUs: attach p50 ${median(attach.attachMs).toFixed(2)} ms, p99 ${p99(attach.attachMs).toFixed(2)} ms`);
      }
    } finally {
      client.close();
      await loader.close();
    }
  } finally {
    server.proc.kill("SIGTERM");
    await server.proc.exited;
    folder.cleanup();
  }
  console.log(lines.join("\n"));
  mkdirSync(resultsDir(), { recursive: true });
  const file = join(resultsDir(), "serve.json");
  writeFileSync(file, JSON.stringify({ device: device.name, repeat, reps, models: out }, null, 2));
  console.log(`\nwrote ${file}`);
  return 0;
}

if (import.meta.main) runMain(main, { command: "bun run bench:serve" });
