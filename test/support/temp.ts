// Temporary folders for tests, all removed after the test file that made them:
// a run leaves nothing under $TMPDIR. (bun test runs no "exit" handlers, and
// runs every file in one process, so each file registers its own clean-up.)

import { afterAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Call once at the top level of a test file: returns `tempDir(prefix)`, which
 * makes a new empty folder under $TMPDIR, removed after the file's tests.
 */
export function tempDirs(): (prefix: string) => string {
  const made: string[] = [];
  afterAll(() => {
    for (const dir of made) removeTempDir(dir);
  });
  return (prefix) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}

/** Removes a folder now (a test that wrote hundreds of MB frees them before the next). */
export function removeTempDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // a folder a test made unwritable: open it up, then remove it
    Bun.spawnSync(["chmod", "-R", "u+rwx", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}
