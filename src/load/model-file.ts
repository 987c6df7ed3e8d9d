// A model file opened for loading: the descriptor the header is parsed from is
// the one the tensor bytes are read through, so what was planned is what is
// loaded even if the path is replaced meanwhile. Open it once, show its plan,
// load it, close it (the CLI does exactly that: it parses once).

import { closeSync, fstatSync, openSync, statSync, type Stats } from "node:fs";
import { checkModel, type ModelCheck } from "../arch/index.ts";
import { readGguf, type GgufFile } from "../gguf/index.ts";
import { LoadError, modelError, toLoadError } from "./errors.ts";

export class ModelFile {
  #fds: number[];

  private constructor(
    readonly path: string,
    fds: number[],
    /** fstat of each file when it was opened. */
    readonly stats: readonly Stats[],
    readonly gguf: GgufFile,
    readonly check: ModelCheck,
  ) {
    this.#fds = fds;
  }

  /** Opens and parses `path`; a model the registry refuses throws (its first problem; all are in `problems`). */
  static async open(path: string): Promise<ModelFile> {
    const fd = openForLoad(path);
    try {
      const stats = fstatSync(fd);
      let gguf: GgufFile;
      try {
        gguf = await readGguf({ fd, size: stats.size }, { path });
      } catch (e) {
        throw toLoadError(e, path);
      }
      const check = checkModel(gguf);
      if (!check.ok) throw modelError(path, check.problems);
      return new ModelFile(path, [fd], [stats], gguf, check);
    } catch (e) {
      closeSync(fd);
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

  /** The file must be the one that was parsed, unchanged: same size and mtime, and still at its path. */
  checkUnchanged(): void {
    this.fds.forEach((fd, i) => {
      const before = this.stats[i]!;
      const now = fstatSync(fd);
      if (now.size !== before.size || now.mtimeMs !== before.mtimeMs) {
        throw new LoadError("FILE_CHANGED", `${this.path} was modified during the load (size ${before.size} → ${now.size})`, "make sure nothing writes the file while it loads, then load it again");
      }
      let onDisk: Stats | null = null;
      try {
        onDisk = statSync(this.path);
      } catch {
        // deleted during the load: the open file is still what was read
      }
      if (onDisk && (onDisk.ino !== before.ino || onDisk.dev !== before.dev)) {
        throw new LoadError("FILE_CHANGED", `${this.path} was replaced by another file during the load`, "load it again once the new file is complete");
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

function openForLoad(path: string): number {
  checkPath(path);
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new LoadError("NOT_READABLE", `${path} cannot be opened (${(e as NodeJS.ErrnoException).code})`, "check the file's permissions");
  }
}
