// Hostile headers for bun run bench:parse: files whose header is tens of MB of
// the cheapest items a GGUF file can hold, one value of 1 GiB (sparse files: no
// disk), and a header of every costly item within the bounds, each read by `bun
// run inspect` in a fresh process, timed, with its peak RSS and exit code.
// Targets: ≤ 3 s and ≤ 768 MiB each.

import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeOversizedValue, writeWideHeader } from "../src/fixtures/hostile.ts";

export interface HostileResult {
  readonly name: string;
  readonly what: string;
  readonly fileBytes: number;
  readonly ms: number;
  readonly peakRssBytes: number;
  readonly exitCode: number;
  /** The one line inspect printed on stderr, or "read". */
  readonly outcome: string;
}

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
const str = (s: string) => Buffer.concat([u64(Buffer.byteLength(s)), Buffer.from(s)]);
const header = (tensors: number, keys: number, ...body: Buffer[]) => Buffer.concat([Buffer.from("GGUF"), u32(3), u64(tensors), u64(keys), ...body]);

const bytes = (make: () => Buffer) => (path: string) => writeFileSync(path, make());

/** n unique 8-character names: base 36, padded with "_". */
const name = (i: number) => i.toString(36).padStart(8, "_");

/** Each file: what it is, and how to write it at a path. */
const FILES: { name: string; what: string; write: (path: string) => void }[] = [
  { name: "value-u8-array", what: "one u8 array of 1 GiB (sparse)", write: (path) => void writeOversizedValue(path, "u8-array") },
  { name: "value-string", what: "one string of 1 GiB (sparse)", write: (path) => void writeOversizedValue(path, "string") },
  { name: "wide", what: "2M tokens, 24 MiB array, 8 MiB string, 100k arrays, 50k tensors", write: writeWideHeader },
  {
    name: "nested",
    what: "4M empty arrays in an array, then 4M one-byte strings (84 MB)",
    write: bytes(() => {
      const n = 4_000_000;
      const arrays = Buffer.alloc(n * 12);
      for (let i = 0; i < n; i++) arrays.writeUInt32LE(4, i * 12);
      const strings = Buffer.alloc(n * 9);
      for (let i = 0; i < n; i++) (strings.writeBigUInt64LE(1n, i * 9), (strings[i * 9 + 8] = 0x61));
      return header(0, 2, str("a"), u32(9), u32(9), u64(n), arrays, str("b"), u32(9), u32(8), u64(n), strings);
    }),
  },
  {
    name: "strings",
    what: "8M one-byte strings in one array (72 MB)",
    write: bytes(() => {
      const n = 8_000_000;
      const strings = Buffer.alloc(n * 9);
      for (let i = 0; i < n; i++) (strings.writeBigUInt64LE(1n, i * 9), (strings[i * 9 + 8] = 0x61));
      return header(0, 1, str("b"), u32(9), u32(8), u64(n), strings);
    }),
  },
  {
    name: "keys",
    what: "4M one-byte keys (84 MB)",
    write: bytes(() => {
      const n = 4_000_000;
      const b = Buffer.alloc(n * 21);
      for (let i = 0; i < n; i++) (b.writeBigUInt64LE(8n, i * 21), b.write(name(i), i * 21 + 8), (b[i * 21 + 20] = 1));
      return header(0, n, b);
    }),
  },
  {
    name: "keys-at-limit",
    what: "65,536 one-byte keys (the most a header may declare)",
    write: bytes(() => {
      const n = 65_536;
      const b = Buffer.alloc(n * 21);
      for (let i = 0; i < n; i++) (b.writeBigUInt64LE(8n, i * 21), b.write(name(i), i * 21 + 8), (b[i * 21 + 20] = 1));
      return header(0, n, b);
    }),
  },
  ...[2_000_000, 262_144].map((n) => ({
    name: `tensors-${n}`,
    what: n === 262_144 ? "262,144 tensor infos (the most a header may declare)" : "2M tensor infos of 8 floats each (144 MB with their data)",
    write: bytes(() => {
      const info = Buffer.alloc(n * 40);
      for (let i = 0; i < n; i++) {
        const o = i * 40;
        info.writeBigUInt64LE(8n, o);
        info.write(name(i), o + 8);
        info.writeUInt32LE(1, o + 16);
        info.writeBigUInt64LE(8n, o + 20);
        info.writeBigUInt64LE(BigInt(i * 32), o + 32);
      }
      const head = header(n, 0, info);
      return Buffer.concat([head, Buffer.alloc((32 - (head.length % 32)) % 32), Buffer.alloc(n * 32)]);
    }),
  })),
];

export function hostileHeaders(): HostileResult[] {
  const dir = mkdtempSync(join(tmpdir(), "gguf-vram-hostile-"));
  const inspect = new URL("../src/cli/inspect.ts", import.meta.url).pathname;
  try {
    return FILES.map((f) => {
      const path = join(dir, `${f.name}.gguf`);
      f.write(path);
      const fileBytes = statSync(path).size;
      // GNU time reports the child's peak RSS.
      const t = performance.now();
      const p = Bun.spawnSync(["/usr/bin/time", "-f", "%M", process.execPath, inspect, path], { stdout: "ignore", stderr: "pipe" });
      const ms = performance.now() - t;
      const lines = p.stderr.toString().trim().split("\n");
      const peakRssBytes = Number(lines.at(-1)) * 1024;
      const error = lines.find((l) => l.startsWith("error:"));
      rmSync(path);
      return { name: f.name, what: f.what, fileBytes, ms, peakRssBytes, exitCode: p.exitCode, outcome: error ? error.replace(/^error: \S+: /, "refused: ").slice(0, 110) : "read" };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
