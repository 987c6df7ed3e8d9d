// Where built libraries live: a per-user cache, because an installed package's
// own folder may be read-only or shared by several users. Each library is one
// file named by the hash of what went into it, so builds of different sources,
// flags, nvcc versions or GPU architectures sit side by side, and a file there
// is never changed once it has its name. A build happens in a folder of its own
// (its objects, and nvcc's temporary files) and ends with one rename: two
// processes building at once each rename a whole library, never half of one.

import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { folderError } from "./errors.ts";

/**
 * The cache folder: $GGUF_VRAM_CACHE_DIR, else $XDG_CACHE_HOME/gguf-vram, else
 * ~/.cache/gguf-vram (an XDG_CACHE_HOME that is not absolute is ignored, as the
 * XDG spec says).
 */
export function nativeCacheDir(env: Record<string, string | undefined> = process.env): string {
  if (env.GGUF_VRAM_CACHE_DIR) return resolve(env.GGUF_VRAM_CACHE_DIR);
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), ".cache"), "gguf-vram");
}

/** The cached file of a library built with `key` (a sha256 in hex). */
export function cachedLibraryPath(cacheDir: string, name: string, key: string): string {
  return join(cacheDir, `${name}-${key.slice(0, 16)}.so`);
}

/** The file that remembers nvcc's version between runs. */
export function rememberedVersionPath(cacheDir: string): string {
  return join(cacheDir, "nvcc-version.json");
}

/** Writes `text` to `file` through a temporary name; a cache that cannot be written is no error here. */
export function writeQuietly(file: string, text: string): void {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(temporary, text);
    renameSync(temporary, file);
  } catch {
    try {
      rmSync(temporary, { force: true });
    } catch {
      // nothing was written
    }
  }
}

// ─── build folders ────────────────────────────────────────────────────────────

const BUILD_PREFIX = ".build-";

/** `.build-<host>-<pid>-`: a folder left by a process of this host that is gone can be removed. */
function buildFolderPrefix(pid = process.pid): string {
  return `${BUILD_PREFIX}${hostname()}-${pid}-`;
}

/**
 * Makes the cache folder and a private build folder in it (on the same file
 * system, so that the final rename is atomic); the build folder is removed when
 * the process exits, however it exits short of SIGKILL.
 */
export function makeBuildFolder(cacheDir: string): { path: string; remove: () => void } {
  try {
    mkdirSync(cacheDir, { recursive: true });
  } catch (e) {
    throw folderError(e, cacheDir, "creating the cache folder");
  }
  removeAbandonedBuildFolders(cacheDir);
  let path: string;
  try {
    path = mkdtempSync(join(cacheDir, buildFolderPrefix()));
  } catch (e) {
    throw folderError(e, cacheDir, "creating a build folder");
  }
  const remove = () => {
    rmSync(path, { recursive: true, force: true });
    process.off("exit", remove);
  };
  process.on("exit", remove);
  return { path, remove };
}

/** The stable name of a library: a link to the one built last (for people and tools; the code opens the keyed file). */
export function latestLibraryPath(cacheDir: string, name: string): string {
  return join(cacheDir, `${name}.so`);
}

/** Moves a finished library to its name in the cache, in one step, and points the `<name>.so` link at it. */
export function installLibrary(built: string, cachedPath: string, cacheDir: string, name: string): void {
  const link = `${latestLibraryPath(cacheDir, name)}.${process.pid}.tmp`;
  try {
    renameSync(built, cachedPath);
    rmSync(link, { force: true });
    symlinkSync(basename(cachedPath), link);
    renameSync(link, latestLibraryPath(cacheDir, name));
  } catch (e) {
    rmSync(link, { force: true });
    throw folderError(e, cacheDir, "storing the built library");
  }
}

/** Removes the build folders of this host's processes that no longer run (killed mid-build). */
function removeAbandonedBuildFolders(cacheDir: string): void {
  const ours = `${BUILD_PREFIX}${hostname()}-`;
  let names: string[];
  try {
    names = readdirSync(cacheDir).filter((name) => name.startsWith(ours));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.slice(ours.length).split("-")[0]);
    if (Number.isInteger(pid) && pid > 0 && !isRunning(pid)) rmSync(join(cacheDir, name), { recursive: true, force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // alive, another user's
  }
}
