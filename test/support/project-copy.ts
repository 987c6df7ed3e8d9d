// A copy of the project's code, for the cases that depend on where the code
// lives: its default fixtures folder is <copy>/fixtures, and its native
// library has never been built there.

import { cpSync, symlinkSync } from "node:fs";
import { join } from "node:path";

export const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** Copies the code into the empty folder `dir` (node_modules is a link to the project's) and returns `dir`. */
export function projectCopy(dir: string): string {
  for (const entry of ["src", "cuda", "build.ts", "package.json", "bunfig.toml", "tsconfig.json"]) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}
