// Measurements around the loader: the page cache, peak RSS, the disk, and the
// routes the loader does not take (naive slices, mmap + register), for comparison.

import { closeSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { Arena, pinHost, Stager, unpinHost } from "../src/cuda/index.ts";
import { readGguf } from "../src/gguf/index.ts";
import { planLoad } from "../src/load/index.ts";
import { checkModel } from "../src/arch/index.ts";

const MiB = 1024 * 1024;

/** Drop the file from the page cache: posix_fadvise(DONTNEED) through GNU dd, else drop_caches (root). */
export function evictFromPageCache(path: string): string {
  const dd = Bun.spawnSync(["dd", `if=${path}`, "iflag=nocache", "count=0", "status=none"]);
  if (dd.exitCode === 0) return "posix_fadvise";
  Bun.spawnSync(["sync"]);
  writeFileSync("/proc/sys/vm/drop_caches", "1");
  return "drop_caches";
}

/** Read the whole file once so it is in the page cache. */
export function warmPageCache(path: string): void {
  const fd = openSync(path, "r");
  const buf = new Uint8Array(64 * MiB);
  try {
    for (let at = 0; ; at += buf.length) if (readSync(fd, buf, 0, buf.length, at) === 0) break;
  } finally {
    closeSync(fd);
  }
}

/** Sequential read speed of the file from disk (evicted first), one reader, GB/s. */
export function diskReadGBps(path: string): number {
  evictFromPageCache(path);
  const fd = openSync(path, "r");
  const buf = new Uint8Array(16 * MiB);
  const t = performance.now();
  let total = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, total);
      if (n === 0) break;
      total += n;
    }
  } finally {
    closeSync(fd);
  }
  return total / 1e6 / (performance.now() - t);
}

/** Peak RSS since the last reset, in bytes (Linux: VmHWM; reset through clear_refs). */
export function resetPeakRss(): void {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
  } catch {
    // not Linux, or not allowed: the peak then counts from process start
  }
}

export function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

/** The naive path: Bun.file(path).slice(...).bytes() per tensor, then a pageable cudaMemcpy. */
export async function naiveUpload(path: string, device: number): Promise<{ ms: number; bytes: number }> {
  const g = await readGguf(path);
  const plan = planLoad(g, checkModel(g));
  const arena = Arena.create(device, plan.arenaBytes);
  const file = Bun.file(path);
  try {
    const t = performance.now();
    for (const tensor of plan.tensors) {
      if (tensor.aliasOf) continue;
      arena.write(tensor.offset, await file.slice(tensor.fileOffset, tensor.fileOffset + tensor.bytes).bytes());
    }
    return { ms: performance.now() - t, bytes: plan.uploadBytes };
  } finally {
    arena.close();
  }
}

/**
 * mmap + cudaHostRegister(read-only) in chunks, one thread: page-cache pages are
 * pinned in place and copied with no read() at all; the cost moves to pinning.
 */
export async function mmapUpload(path: string, device: number, chunkBytes: number): Promise<{ ms: number; pinMs: number; bytes: number }> {
  const g = await readGguf(path);
  const plan = planLoad(g, checkModel(g));
  const arena = Arena.create(device, plan.arenaBytes);
  const stager = Stager.create(device, 2, 4096);
  const map = Bun.mmap(path, { shared: true });
  const page = 4096;
  let pinMs = 0;
  try {
    const t = performance.now();
    const pinned: (Uint8Array | null)[] = [null, null];
    let chunk = 0;
    // Chunks of whole pages over the data section; each tensor's bytes inside a chunk go in one copy.
    const start = Math.floor(g.dataOffset / page) * page;
    for (let at = start; at < g.fileSize; at += chunkBytes, chunk++) {
      const slot = chunk % 2;
      stager.wait(slot);
      if (pinned[slot]) unpinHost(pinned[slot]!);
      const region = map.subarray(at, Math.min(g.fileSize, at + chunkBytes));
      const p = performance.now();
      pinHost(region, true);
      pinMs += performance.now() - p;
      pinned[slot] = region;
      for (const tensor of plan.tensors) {
        if (tensor.aliasOf) continue;
        const lo = Math.max(tensor.fileOffset, at);
        const hi = Math.min(tensor.fileOffset + tensor.bytes, at + region.length);
        if (lo < hi) stager.uploadFrom(slot, map.subarray(lo, hi), arena.handle, tensor.offset + (lo - tensor.fileOffset));
      }
    }
    stager.sync();
    for (const r of pinned) if (r) unpinHost(r);
    return { ms: performance.now() - t, pinMs, bytes: plan.uploadBytes };
  } finally {
    stager.close();
    arena.close();
  }
}
