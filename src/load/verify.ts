// Proof that VRAM holds exactly the file's bytes: every tensor's checksum is
// computed on the GPU over its VRAM (on every device the model spans) and on
// the host over a fresh read of the file, and the two must be equal. The host side reads by tensor (file offset
// and size, as the header says), not by upload span, so it also checks the
// span arithmetic; it runs in parallel over the loader's workers, chunk by chunk.

import { closeSync, openSync, statSync } from "node:fs";
import { finishChecksum } from "../cuda/index.ts";
import { LoadError } from "./errors.ts";
import type { Model } from "./model.ts";
import { checksumHere, type UploadPool } from "./pool.ts";
import { newChecksumJob, rangeSum } from "./spans.ts";
import { LoadStop } from "./stop.ts";

/** Tensors per GPU checksum call: between calls a stop is seen and the event loop runs. */
const GPU_BATCH_BYTES = 512 * 1024 * 1024;

export interface VerifyReport {
  readonly tensors: number;
  readonly bytes: number;
  readonly ms: number;
}

/**
 * Checks a loaded model against its files, reading them again from their paths
 * (on this thread, yielding between chunks, unless a Loader's pool is given:
 * Loader.verify() and the `verify` load option spread the reading over its workers).
 */
export async function verifyModel(model: Model, pool: UploadPool | null = null, stop: LoadStop = new LoadStop()): Promise<VerifyReport> {
  const fds: number[] = [];
  try {
    for (const { path } of model.source.files) {
      try {
        fds.push(openSync(path, "r"));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw code === "ENOENT"
          ? new LoadError("FILE_CHANGED", `${path} no longer exists, so VRAM cannot be checked against it`, "the file was removed or renamed after the load; load it again from where it is now")
          : new LoadError("NOT_READABLE", `${path} cannot be opened to verify it (${code})`, "check the file's permissions");
      }
    }
    return await verifyAgainst(model, fds, pool, stop);
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

/**
 * Checks `model` against the files open as `fds` (by shard), on `pool`'s workers
 * or on this thread. Every device's VRAM is checked: each distinct file range
 * is read once, and compared with each copy of it (replicas, RoPE factors of a
 * split, a tied head copied to another GPU).
 */
export async function verifyAgainst(model: Model, fds: readonly number[], pool: UploadPool | null, stop: LoadStop): Promise<VerifyReport> {
  const t0 = performance.now();
  const path = model.source.path;
  const parts = model.parts.map((p) => ({ device: p.device, arena: p.arena, tensors: [...p.tensors.values()].filter((t) => !t.aliasOf) }));
  const rangeOf = new Map<string, number>();
  const ranges: { shard: number; fileOffset: number; bytes: number }[] = [];
  const keyOf = (t: { shard: number; fileOffset: number; bytes: number }) => `${t.shard}:${t.fileOffset}:${t.bytes}`;
  for (const p of parts) {
    for (const t of p.tensors) {
      if (rangeOf.has(keyOf(t))) continue;
      rangeOf.set(keyOf(t), ranges.length);
      ranges.push(t);
    }
  }
  const job = newChecksumJob(ranges, fds);
  const unhook = stop.onStop(() => job.shared.stop());
  // The workers read the files while this thread has the GPUs checksum VRAM.
  const host = pool ? pool.checksums(job, path) : null;
  host?.catch(() => {}); // awaited below
  const onGpu: bigint[][] = [];
  try {
    for (const p of parts) onGpu.push(await gpuChecksums(p.arena, p.tensors, stop));
  } catch (e) {
    job.shared.stop();
    await host?.catch(() => {});
    unhook();
    throw e;
  }
  try {
    await (host ?? checksumHere(job, path));
  } finally {
    unhook();
  }
  stop.check();

  const expected = ranges.map((r, i) => finishChecksum(rangeSum(job, i), r.bytes));
  const several = parts.length > 1;
  const mismatched = parts.flatMap((p, d) => p.tensors.filter((t, i) => expected[rangeOf.get(keyOf(t))!] !== onGpu[d]![i]).map((t) => (several ? `${t.name} on device ${p.device}` : t.name)));
  if (mismatched.length > 0) {
    const changed = model.source.files.some((f) => {
      try {
        const st = statSync(f.path);
        return st.size !== f.fileSize || st.mtimeMs !== f.mtimeMs;
      } catch {
        return true; // gone: certainly changed
      }
    });
    const more = mismatched.length > 1 ? ` and ${mismatched.length - 1} more tensor${mismatched.length > 2 ? "s" : ""}` : "";
    throw new LoadError(
      "VERIFY_FAILED",
      `VRAM does not hold the file's bytes for ${mismatched[0]}${more}${changed ? " (the file was modified after the load)" : ""}`,
      changed ? "the file changed after it was loaded; load it again" : "the upload or the GPU memory is faulty: load again, and check `nvidia-smi -q -d ECC`",
    );
  }
  const tensors = parts.reduce((n, p) => n + p.tensors.length, 0);
  return { tensors, bytes: parts.reduce((n, p) => n + p.tensors.reduce((b, t) => b + t.bytes, 0), 0), ms: performance.now() - t0 };
}

/** GPU checksums of `tensors`, a batch per native call, with a checkpoint and a turn of the event loop between batches. */
async function gpuChecksums(arena: Model["arena"], tensors: readonly { offset: number; bytes: number }[], stop: LoadStop): Promise<bigint[]> {
  const sums: bigint[] = [];
  for (let i = 0; i < tensors.length; ) {
    stop.check();
    let bytes = 0;
    let end = i;
    while (end < tensors.length && (end === i || bytes + tensors[end]!.bytes <= GPU_BATCH_BYTES)) bytes += tensors[end++]!.bytes;
    sums.push(...arena.checksums(tensors.slice(i, end).map((t) => ({ offset: t.offset, bytes: t.bytes }))));
    i = end;
    if (i < tensors.length) await new Promise((r) => setImmediate(r));
  }
  return sums;
}
