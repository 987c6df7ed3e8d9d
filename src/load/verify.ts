// Proof that VRAM holds exactly the file's bytes: every tensor's checksum is
// computed on the GPU over its VRAM and on the host over a fresh read of the
// file, and the two must be equal.

import { closeSync, openSync, readSync, statSync } from "node:fs";
import { finishChecksum, hostChecksumPartial, type Model } from "../cuda/index.ts";
import { LoadError } from "./errors.ts";

/** Read size for the host side; a multiple of 8 so partial checksums line up. */
const CHUNK = 16 * 1024 * 1024;

export interface VerifyReport {
  readonly tensors: number;
  readonly bytes: number;
  readonly ms: number;
}

export function verifyModel(model: Model): VerifyReport {
  const t0 = performance.now();
  const tensors = [...model.tensors.values()].filter((t) => !t.aliasOf);
  const onGpu = model.arena.checksums(tensors.map((t) => ({ offset: t.offset, bytes: t.bytes })));
  const buf = new Uint8Array(CHUNK);
  const path = model.source.path;
  const fd = openSync(path, "r");
  const mismatched: string[] = [];
  let bytes = 0;
  try {
    tensors.forEach((t, i) => {
      let sum = 0n;
      for (let done = 0; done < t.bytes; ) {
        const n = Math.min(CHUNK, t.bytes - done);
        const got = readSync(fd, buf, 0, n, t.fileOffset + done);
        if (got !== n) throw new LoadError("FILE_CHANGED", `${path} is shorter than when it was loaded: ${t.name} cannot be read back`, "the file changed after the load; load it again");
        sum += hostChecksumPartial(buf.subarray(0, n), done / 8);
        done += n;
      }
      bytes += t.bytes;
      if (finishChecksum(sum, t.bytes) !== onGpu[i]) mismatched.push(t.name);
    });
  } finally {
    closeSync(fd);
  }
  if (mismatched.length > 0) {
    const st = statSync(path);
    const changed = st.size !== model.source.fileSize || st.mtimeMs !== model.source.mtimeMs;
    const more = mismatched.length > 1 ? ` and ${mismatched.length - 1} more tensor${mismatched.length > 2 ? "s" : ""}` : "";
    throw new LoadError(
      "VERIFY_FAILED",
      `VRAM does not hold the file's bytes for ${mismatched[0]}${more}${changed ? " (the file was modified after the load)" : ""}`,
      changed ? "the file changed after it was loaded; load it again" : "the upload or the GPU memory is faulty: load again, and check `nvidia-smi -q -d ECC`",
    );
  }
  return { tensors: tensors.length, bytes, ms: performance.now() - t0 };
}
