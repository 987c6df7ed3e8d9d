// Small statistics for benchmarks.

import { resolve } from "node:path";

export interface Stats {
  readonly n: number;
  readonly min: number;
  readonly median: number;
  readonly p90: number;
  readonly max: number;
}

export function stats(samples: readonly number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))]!;
  return { n: s.length, min: s[0]!, median: at(0.5), p90: at(0.9), max: s[s.length - 1]! };
}

/** Benchmark JSON goes to build/bench (ignored by git); override with GGUF_VRAM_BENCH_DIR. */
export function resultsDir(): string {
  return process.env.GGUF_VRAM_BENCH_DIR ?? resolve(import.meta.dir, "../build/bench");
}
