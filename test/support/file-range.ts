// A range of a file's bytes, read independently of the loader: what VRAM is compared with.

import { closeSync, openSync, readSync } from "node:fs";

export function fileRange(path: string, offset: number, bytes: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const out = new Uint8Array(bytes);
    for (let done = 0; done < bytes; ) done += readSync(fd, out, done, bytes - done, offset + done);
    return out;
  } finally {
    closeSync(fd);
  }
}
