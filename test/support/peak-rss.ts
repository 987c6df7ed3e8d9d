// Preloaded into a child process (bun --preload): at exit, writes the process's
// peak resident memory since its exec (VmHWM) to the file in $PEAK_RSS_FILE.
// (A child's ru_maxrss is no good for this: Linux carries it across exec, so a
// child forked from a large test runner reports the runner's size.)

import { readFileSync, writeFileSync } from "node:fs";

const out = process.env.PEAK_RSS_FILE;
if (out) {
  process.on("exit", () => {
    const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    writeFileSync(out, String(Number(kib) * 1024));
  });
}
