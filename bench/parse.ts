// bun run bench:parse — how fast the GGUF header of Qwen2.5-0.5B-Instruct
// Q4_K_M parses (5.9 MB: 151,936 tokens, 151,387 merges, 291 tensor infos).
// Reports the first parse of fresh processes (cold JIT) and the median of warm
// parses in one process. Target: ≤ 15 ms. gguf-py's GGUFReader takes ~8 s.
// Then hostile headers (bench/hostile.ts): each read or refused by `bun run
// inspect` in ≤ 3 s and ≤ 768 MiB peak RSS.

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { qwenTokenizer } from "../src/fixtures/tokenizer.ts";
import { readGguf } from "../src/gguf/index.ts";
import { hostileHeaders } from "./hostile.ts";
import { resultsDir, stats, type Stats } from "./stats.ts";

const TARGET_MS = 15;
const WARM_RUNS = 60;
const FRESH_PROCESSES = 8;

if (process.argv[2] === "--once") {
  // One parse in a fresh process: print its time for the parent.
  const t = performance.now();
  await readGguf(process.argv[3]!);
  console.log(performance.now() - t);
  process.exit(0);
}

const path = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m");
const tokenizer = (await qwenTokenizer(151_936)).source;
const g = await readGguf(path);

const fresh: number[] = [];
for (let i = 0; i < FRESH_PROCESSES; i++) {
  const p = Bun.spawnSync([process.execPath, import.meta.path, "--once", path]);
  fresh.push(Number(p.stdout.toString().trim()));
}
const warm: number[] = [];
for (let i = 0; i < WARM_RUNS; i++) {
  const t = performance.now();
  await readGguf(path);
  warm.push(performance.now() - t);
}

const cold = stats(fresh);
const hot = stats(warm);
const row = (what: string, s: Stats) => `${what.padEnd(34)} ${s.median.toFixed(2).padStart(7)} ms median   ${s.min.toFixed(2).padStart(7)} min   ${s.p90.toFixed(2).padStart(7)} p90`;
console.log(`header ${g.headerBytes.toLocaleString("en-US")} bytes · ${g.metadata.size} keys · ${g.tensors.length} tensors · tokenizer: ${tokenizer}`);
console.log(`cpu: ${cpus()[0]?.model ?? "?"} × ${cpus().length}`);
console.log(row(`warm (${WARM_RUNS} parses, one process)`, hot));
console.log(row(`cold (first parse, ${FRESH_PROCESSES} processes)`, cold));
console.log(`target ≤ ${TARGET_MS} ms (warm median): ${hot.median <= TARGET_MS ? "met" : "MISSED"}`);

console.log("\nhostile headers, each read by `bun run inspect` in a fresh process (target ≤ 3 s, ≤ 768 MiB):");
const hostile = existsSync("/usr/bin/time") ? hostileHeaders() : [];
for (const h of hostile) {
  const ok = h.ms <= 3000 && h.peakRssBytes <= 768 * 2 ** 20;
  console.log(`  ${h.what.padEnd(66)} ${(h.ms / 1000).toFixed(2).padStart(6)} s ${(h.peakRssBytes / 2 ** 20).toFixed(0).padStart(5)} MiB  exit ${h.exitCode}  ${ok ? "met" : "MISSED"}  ${h.outcome}`);
}
if (hostile.length === 0) console.log("  (skipped: needs GNU time at /usr/bin/time for the peak RSS)");

mkdirSync(resultsDir(), { recursive: true });
const out = join(resultsDir(), "parse.json");
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), file: path, headerBytes: g.headerBytes, tokenizer, cpu: cpus()[0]?.model, cores: cpus().length, warm: hot, cold, targetMs: TARGET_MS, hostile }, null, 2));
console.log(`wrote ${out}`);
