// Reads the GGUF header at argv[2] (through an open file when argv[3] is "fd")
// while a timer ticks every 2 ms, and prints, as JSON, the longest the timer
// waited and what was read. A fresh process: another test's heap and workers
// would time their own pauses, not the reader's.

import { closeSync, fstatSync, openSync } from "node:fs";
import { readGguf, type GgufArray } from "../../src/gguf/index.ts";

const [path, how] = process.argv.slice(2) as [string, string | undefined];
const fd = how === "fd" ? openSync(path, "r") : -1;
let longest = 0;
let ticks = 0;
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  longest = Math.max(longest, now - last);
  last = now;
  ticks++;
}, 2);
const g = await readGguf(fd >= 0 ? { fd, size: fstatSync(fd).size } : path);
clearInterval(timer);
longest = Math.max(longest, performance.now() - last);
if (fd >= 0) closeSync(fd);
const text = g.get("wide.text");
console.log(JSON.stringify({
  longest,
  ticks,
  tensors: g.tensors.length,
  tokens: (g.get("tokenizer.ggml.tokens") as GgufArray).length,
  arrays: (g.get("wide.arrays") as GgufArray).length,
  textLength: text?.type === "string" ? text.value.length : -1,
}));
