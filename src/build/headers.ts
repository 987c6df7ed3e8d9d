// Public headers of the native libraries, copied beside them in the cache
// (<cache>/include/), so a program outside this package compiles with
// `-I <cache>/include` and links with `-L <cache> -lgguf_vram_client`.

import { copyFileSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { folderError } from "./errors.ts";

/** The folder of the headers in a cache folder. */
export function headerFolder(cacheDir: string): string {
  return join(cacheDir, "include");
}

/** Copies each header (relative to `root`) into the cache's include folder, each in one rename. */
export function installHeaders(root: string, headers: readonly string[], cacheDir: string): void {
  if (headers.length === 0) return;
  const folder = headerFolder(cacheDir);
  for (const header of headers) {
    const target = join(folder, basename(header));
    const temporary = `${target}.${process.pid}.tmp`;
    try {
      mkdirSync(folder, { recursive: true });
      copyFileSync(join(root, header), temporary);
      renameSync(temporary, target);
    } catch (e) {
      rmSync(temporary, { force: true });
      throw folderError(e, folder, `storing ${basename(header)}`);
    }
  }
}
