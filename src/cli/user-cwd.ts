// The folder the user typed the command in. A package script (`bun run load`,
// or a project's own script that runs `gguf-vram`) runs from the package root
// wherever it was typed; bun says where it was typed in npm_config_local_prefix,
// npm in INIT_CWD. Paths the user gives mean that folder, so the commands move
// there before reading any.

import { realpathSync, statSync } from "node:fs";
import { basename, isAbsolute, relative, resolve } from "node:path";

type Env = Record<string, string | undefined>;

/**
 * The folder a package script was typed in, when this process is that script's
 * command and the folder lies inside the package (where the script runs); null
 * otherwise (not started by a script, typed at the root, or a process the
 * script started in turn, which inherits the variables but not their meaning).
 */
export function userFolder(env: Env, cwd: string, entry: string | undefined): string | null {
  const script = env.npm_lifecycle_script;
  if (!script || !entry || !scriptRuns(script, entry, cwd)) return null;
  for (const candidate of [env.npm_config_local_prefix, env.INIT_CWD]) {
    if (!candidate || !isAbsolute(candidate)) continue;
    const inside = relative(cwd, candidate);
    if (inside === "" || inside.startsWith("..") || isAbsolute(inside)) continue;
    if (isDirectory(candidate)) return candidate;
  }
  return null;
}

/** Whether the script's command line names `entry`: by path (`bun src/cli/load.ts`) or as a bin (`gguf-vram load`). */
function scriptRuns(script: string, entry: string, cwd: string): boolean {
  const real = realOrSelf(entry);
  const bin = basename(entry).replace(/\.[cm]?[jt]s$/, "");
  return script.split(/\s+/).some((word) => word === bin || (/[./]/.test(word) && realOrSelf(resolve(cwd, word)) === real));
}

function realOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Moves to the folder the user typed the command in (see userFolder); a no-op anywhere else. */
export function enterUserFolder(): void {
  const folder = userFolder(process.env, process.cwd(), process.argv[1]);
  if (folder) process.chdir(folder);
}
