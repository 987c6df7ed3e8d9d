// The first bytes of a file, read as the parse asks for them. One buffer holds
// them from offset 0: the initial window, then, for a header larger than that,
// one buffer as large as the bounds allow a header to be (its pages cost memory
// only once bytes are read into them), so every byte is read, and faulted in,
// once. Reads go a few MiB at a time and await each, so the event loop runs
// between them however large the header.

import { closeSync, fstatSync, openSync, read, statSync } from "node:fs";
import { Window } from "./cursor.ts";
import { GgufError } from "./errors.ts";

/**
 * A file already open: the header and then the tensor data are read through the
 * same descriptor, with no window for the path to change in between. (Bun.file(fd)
 * reads from the descriptor's position, not from the slice's start, so it cannot
 * be used for reads at explicit offsets.)
 */
export interface OpenFile {
  readonly fd: number;
  readonly size: number;
}

/** Bytes of one read: a few milliseconds even where fresh pages fault in at 300 MB/s. */
const READ_CHUNK = 2 << 20;

export class HeaderBytes {
  private buffer = new Uint8Array(0);
  private end = 0;

  constructor(
    private readonly input: Blob | OpenFile,
    /** The most that will be asked for: the file's size, or the header's bound. */
    private readonly most: number,
  ) {}

  get size(): number {
    return this.input.size;
  }

  /** The window [0, end) (at least), reading what is not read yet. */
  async readTo(end: number): Promise<Window> {
    if (end > this.buffer.length) {
      const next = new Uint8Array(this.buffer.length === 0 ? end : Math.max(end, this.most));
      next.set(this.buffer.subarray(0, this.end));
      this.buffer = next;
    }
    while (this.end < end) {
      const n = await this.readChunk(this.end, Math.min(READ_CHUNK, end - this.end));
      if (n === 0) throw new GgufError("NOT_READABLE", "the file shrank while it was read", this.end, "make sure nothing else writes the file, and try again");
      this.end += n;
    }
    return new Window(this.buffer.subarray(0, this.end), this.input.size);
  }

  private async readChunk(at: number, length: number): Promise<number> {
    try {
      if ("fd" in this.input) {
        const fd = this.input.fd;
        return await new Promise<number>((resolve, reject) => read(fd, this.buffer, at, length, at, (e, n) => (e ? reject(e) : resolve(n))));
      }
      const bytes = new Uint8Array(await this.input.slice(at, at + length).arrayBuffer());
      this.buffer.set(bytes, at);
      return bytes.length;
    } catch (e) {
      throw new GgufError("NOT_READABLE", `the file cannot be read: ${(e as Error).message}`, at, "check the file's permissions and the disk");
    }
  }
}

/** Opens the file at `path` for reading, or says in the user's words why it cannot be. */
export function openPath(path: string): OpenFile {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new GgufError("FILE_NOT_FOUND", "no such file", -1, "check the path; `bun run load` with no arguments lists the models it can find");
    throw new GgufError("NOT_READABLE", `the file cannot be read (${code})`, -1, "check the file's permissions");
  }
  if (st.isDirectory()) throw new GgufError("IS_A_DIRECTORY", "this is a directory, not a GGUF file", -1, "pass the path of the .gguf file inside it");
  if (!st.isFile()) throw new GgufError("NOT_READABLE", "this is not a regular file", -1, "pass the path of a .gguf file");
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new GgufError("NOT_READABLE", `the file cannot be read (${(e as NodeJS.ErrnoException).code})`, -1, "check the file's permissions");
  }
  return { fd, size: fstatSync(fd).size };
}

export function closeFile(file: OpenFile): void {
  closeSync(file.fd);
}
