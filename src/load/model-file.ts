// A model opened for loading: one file, or every file of a split set. The
// descriptor each header is parsed from is the one its tensor bytes are read
// through, so what was planned is what is loaded even if a path is replaced
// meanwhile. Open it once, show its plan, load it, close it (the CLI does
// exactly that: it parses once).

import { closeSync, fstatSync, openSync, statSync, type Stats } from "node:fs";
import { checkModel, type ModelCheck } from "../arch/index.ts";
import { GgufError, readGguf, readModelFiles, type GgufFile } from "../gguf/index.ts";
import { LoadError, modelError, toLoadError } from "./errors.ts";

export interface OpenOptions {
  /**
   * Load a model the registry refuses or does not know: only the GGUF format
   * is checked, every tensor goes to VRAM as it is, and nothing is tied.
   */
  readonly unchecked?: boolean;
}

export class ModelFile {
  #fds: number[];

  private constructor(
    /** The path given (any file of a split set). */
    readonly path: string,
    /** Every file, by shard (one for a model that is not split). */
    readonly paths: readonly string[],
    fds: number[],
    /** fstat of each file when it was opened. */
    readonly stats: readonly Stats[],
    readonly gguf: GgufFile,
    readonly check: ModelCheck,
    /** Loaded without the registry's approval (--unchecked): `check` says what it found. */
    readonly unchecked: boolean,
  ) {
    this.#fds = fds;
  }

  /**
   * Opens and parses `path`, and the rest of its split set if it is a shard; a
   * model the registry refuses throws (its first problem; all are in
   * `problems`), unless `unchecked`.
   */
  static async open(path: string, options: OpenOptions = {}): Promise<ModelFile> {
    checkPath(path);
    const opened = new Map<string, { fd: number; stats: Stats }>();
    const read = async (p: string): Promise<GgufFile> => {
      const fd = openShard(p);
      const stats = fstatSync(fd);
      opened.set(p, { fd, stats });
      return readGguf({ fd, size: stats.size }, { path: p });
    };
    try {
      let gguf: GgufFile;
      try {
        gguf = await readModelFiles(path, read);
      } catch (e) {
        throw toLoadError(e, path);
      }
      const check = checkModel(gguf);
      if (!check.ok && !options.unchecked) throw modelError(path, check.problems);
      const paths = gguf.shards.map((s) => s.path!);
      const files = paths.map((p) => opened.get(p)!);
      return new ModelFile(path, paths, files.map((f) => f.fd), files.map((f) => f.stats), gguf, check, !check.ok);
    } catch (e) {
      for (const { fd } of opened.values()) closeSync(fd);
      throw e;
    }
  }

  /** The open descriptors, by shard. */
  get fds(): readonly number[] {
    if (this.#fds.length === 0) throw new LoadError("NOT_READABLE", `${this.path} was closed`, "this is a bug in the caller: the ModelFile was used after close()");
    return this.#fds;
  }

  get closed(): boolean {
    return this.#fds.length === 0;
  }

  /** Every file must be the one that was parsed, unchanged: same size and mtime, and still at its path. */
  checkUnchanged(): void {
    this.fds.forEach((fd, i) => {
      const path = this.paths[i]!;
      const before = this.stats[i]!;
      const now = fstatSync(fd);
      if (now.size !== before.size || now.mtimeMs !== before.mtimeMs) {
        throw new LoadError("FILE_CHANGED", `${path} was modified during the load (size ${before.size} → ${now.size})`, "make sure nothing writes the file while it loads, then load it again");
      }
      let onDisk: Stats | null = null;
      try {
        onDisk = statSync(path);
      } catch {
        // deleted during the load: the open file is still what was read
      }
      if (onDisk && (onDisk.ino !== before.ino || onDisk.dev !== before.dev)) {
        throw new LoadError("FILE_CHANGED", `${path} was replaced by another file during the load`, "load it again once the new file is complete");
      }
    });
  }

  /** Closes the descriptors. Idempotent. */
  close(): void {
    const fds = this.#fds;
    this.#fds = [];
    for (const fd of fds) closeSync(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A wrong path fails with the user's words for it before anything else starts. */
export function checkPath(path: string): void {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new LoadError("FILE_NOT_FOUND", `${path}: no such file`, "check the path; `bun run load` with no arguments lists the models it finds");
    throw new LoadError("NOT_READABLE", `${path} cannot be read (${code})`, "check the file's permissions");
  }
  if (st.isDirectory()) throw new LoadError("IS_A_DIRECTORY", `${path} is a directory, not a GGUF file`, "pass the path of the .gguf file inside it");
  if (!st.isFile()) throw new LoadError("NOT_READABLE", `${path} is not a regular file`, "pass the path of a .gguf file");
}

/** Opens one file of the model; a missing one is the reader's FILE_NOT_FOUND (a split set names it). */
function openShard(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const error = code === "ENOENT" ? new GgufError("FILE_NOT_FOUND", "no such file", -1, "check the path") : new GgufError("NOT_READABLE", `the file cannot be opened (${code})`, -1, "check the file's permissions");
    error.file = path;
    throw error;
  }
}
