// Output that is on its way before the process exits. Bun's process.stdout
// writes to a pipe asynchronously, and process.exit() drops what is still
// queued: `… --json | jq` got the first 64 KiB. Everything the commands print
// goes through these synchronous writes instead (console.log is synchronous too).

import { writeSync } from "node:fs";

/** Where a command writes text: stdout or stderr, or a test's stream. */
export interface TextSink {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/**
 * Descriptors whose reader has gone (`… | head -c 100`): what is still
 * written to them is dropped, and the command ends as it would have, with its
 * own exit code and nothing said about the pipe.
 */
const closedByReader = new Set<number>();

/** Writes all of `text` to `fd` before returning, waiting out a full non-blocking pipe. */
export function writeAllSync(fd: number, text: string): void {
  if (closedByReader.has(fd)) return;
  const bytes = Buffer.from(text);
  for (let done = 0; done < bytes.length; ) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EPIPE") return void closedByReader.add(fd);
      if (code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // the reader is behind: wait a little
    }
  }
}

/** A sink on a file descriptor (1: stdout, 2: stderr) whose writes are complete when they return. */
export function syncSink(fd: 1 | 2): TextSink {
  const stream = fd === 1 ? process.stdout : process.stderr;
  return { write: (text: string) => writeAllSync(fd, text), isTTY: stream.isTTY === true };
}
