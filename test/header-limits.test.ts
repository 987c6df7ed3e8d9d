// What one header may cost (src/gguf/limits.ts): a value larger than the bound
// is refused from its length or count alone, naming the key, by the reader and
// by both commands in fresh processes, in bounded memory; the header's bound
// counts memory as well as file bytes, exactly, however the parse is cut into
// windows and time slices; and a large header does not stall the event loop.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OVERSIZED_KEYS, WIDE, writeOversizedValue, writeWideHeader, type OversizedKind } from "../src/fixtures/hostile.ts";
import { v } from "../src/fixtures/values.ts";
import { GgufError, HEADER_LIMITS, readGguf, StringArray, type GgufArray, type GgufFile, type HeaderLimits } from "../src/gguf/index.ts";
import { encodeHeader, type WriteEntry } from "../src/gguf/writer.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MiB = 1 << 20;
let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "gguf-vram-limits-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function outcome(source: string | Blob, options: Parameters<typeof readGguf>[1] = {}): Promise<GgufFile | GgufError> {
  return readGguf(source, options).catch((e: unknown) => {
    if (e instanceof GgufError) return e;
    throw e;
  });
}

// ─── one value of 1 GiB ───────────────────────────────────────────────────────

describe("a value of 1 GiB, in a file that is otherwise valid GGUF", () => {
  for (const kind of ["u8-array", "string"] as OversizedKind[]) {
    const key = OVERSIZED_KEYS[kind];

    test(`a ${kind}: VALUE_TOO_LARGE at its length field, naming the key and the bound, without reading it`, async () => {
      const path = join(dir, `${kind}.gguf`);
      const lengthAt = writeOversizedValue(path, kind);
      const fd = openSync(path, "r");
      const rssBefore = process.memoryUsage().rss;
      try {
        for (const source of [path, { fd, size: fstatSync(fd).size }]) {
          const e = (await outcome(source as string)) as GgufError;
          expect(e).toBeInstanceOf(GgufError);
          expect([e.code, e.offset]).toEqual(["VALUE_TOO_LARGE", lengthAt]);
          expect(e.message).toContain(`'${key}' is ${kind === "string" ? "a string of 1,073,741,824 bytes" : "an array of 1,073,741,824 u8 items"}`);
          expect(e.message).toContain("at most 128 MiB");
          expect(e.hint).toContain("corrupt or hostile");
        }
      } finally {
        closeSync(fd);
      }
      // Reading the value would have taken a gigabyte or two.
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * MiB);
    });

    for (const command of [["src/cli/inspect.ts"], ["src/cli/load.ts", "--dry-run", "--model"]]) {
      test(`a ${kind}: \`bun ${command.join(" ")}\` exits 1 with one line naming the key, in ≤ 768 MiB`, () => {
        const path = join(dir, `${kind}-cli.gguf`);
        writeOversizedValue(path, kind);
        const peak = join(dir, `${kind}-peak`);
        const preload = new URL("./support/peak-rss.ts", import.meta.url).pathname;
        const p = Bun.spawnSync([process.execPath, "--preload", preload, ...command, path], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", CUDA_VISIBLE_DEVICES: "", PEAK_RSS_FILE: peak } });
        const lines = p.stderr.toString().trim().split("\n");
        expect([p.exitCode, lines.length]).toEqual([1, 1]);
        expect(lines[0]).toContain(`'${key}' is`);
        expect(lines[0]).toContain("gguf-vram reads metadata values of at most 128 MiB");
        const peakBytes = Number(readFileSync(peak, "utf8"));
        expect(peakBytes).toBeGreaterThan(0);
        expect(peakBytes).toBeLessThanOrEqual(768 * MiB);
      });
    }
  }
});

// ─── the header's bound, exactly ──────────────────────────────────────────────

/** Every kind of value, arrays of arrays holding strings and numbers among them. */
const ENTRIES: WriteEntry[] = [
  { key: "a.text", value: v.str("héllo, 世界") },
  { key: "a.bytes", value: { type: "array", itemType: "u8", length: 5, items: new Uint8Array([1, 2, 3, 4, 5]) } },
  { key: "a.words", value: v.strings(Array.from({ length: 300 }, (_, i) => `w${i}`)) },
  {
    key: "a.nested",
    value: {
      type: "array",
      itemType: "array",
      length: 40,
      items: Array.from({ length: 40 }, (_, i): GgufArray => (i % 2 === 0 ? v.strings([`s${i}`, "ü"]) : { type: "array", itemType: "array", length: 1, items: [v.f32s(new Float32Array([i]))] })),
    },
  },
  { key: "a.last", value: { type: "array", itemType: "i32", length: 3, items: new Int32Array([7, 8, 9]) } },
];

/** What the reader charges ENTRIES beyond their bytes in the file (limits.ts). */
const EXTRA =
  2 * ["a.text", "a.bytes", "a.words", "a.nested", "a.last"].reduce((n, k) => n + k.length, 0) + // keys
  2 * new TextEncoder().encode("héllo, 世界").length + // the string value
  5 + // the u8 copy
  8 * 300 + // the words' index
  160 * 40 + 20 * 8 * 2 + 20 * (160 + 4) + // 40 arrays: 20 of two strings, 20 of one array of one f32
  12; // the i32 copy

describe("the header's bound counts its bytes and the memory beyond them, exactly", () => {
  const bytes = encodeHeader({ metadata: ENTRIES, tensors: [] }).bytes;
  const read = (window: number | undefined, sliceMs: number | undefined, limits: Partial<HeaderLimits>) => outcome(new Blob([bytes]), { initialWindow: window, sliceMs, limits });

  test("at its cost it reads; one byte less is refused at the last value — at every window, pausing at every chance", async () => {
    const g = (await read(undefined, undefined, {})) as GgufFile;
    const cost = g.headerBytes + EXTRA;
    const lastCount = g.keyOffsets.get("a.last")! + 8 + 6 + 4 + 4; // its key, type and item type; then its count
    for (const window of [undefined, 1, 7, 64, 333, 4096]) {
      for (const sliceMs of [undefined, 0]) {
        const fits = await read(window, sliceMs, { headerBytes: cost });
        expect([window, sliceMs, fits instanceof GgufError ? fits.message : "read"]).toEqual([window, sliceMs, "read"]);
        expect((fits as GgufFile).get("a.nested")).toEqual(g.get("a.nested")!);
        const e = (await read(window, sliceMs, { headerBytes: cost - 1 })) as GgufError;
        expect([window, sliceMs, e.code, e.offset]).toEqual([window, sliceMs, "HEADER_TOO_LARGE", lastCount]);
        expect(e.message).toStartWith(`'a.last' is an array of 3 i32 items: the header would cost ${cost.toLocaleString("en-US")} bytes`);
      }
    }
  });

  test("a value at its bound reads; one byte more is refused where it passes, even inside a string array", async () => {
    const g = (await read(undefined, undefined, {})) as GgufFile;
    // The words array from its item type (4) and count (8) to the end of its last string.
    const words = StringArray.from(Array.from({ length: 300 }, (_, i) => `w${i}`));
    let size = 12;
    for (let i = 0; i < words.length; i++) size += 8 + words.byteLength(i);
    const start = g.keyOffsets.get("a.words")! + 8 + 7 + 4;
    expect(await read(undefined, 0, { valueBytes: size })).not.toBeInstanceOf(GgufError);
    const e = (await read(1, 0, { valueBytes: size - 1 })) as GgufError;
    expect([e.code, e.offset]).toEqual(["VALUE_TOO_LARGE", start + size - 8 - words.byteLength(299)]);
    expect(e.message).toStartWith(`string 299 of 'a.words' ends at byte ${(start + size).toLocaleString("en-US")}: the value would take ${size.toLocaleString("en-US")} bytes of the file`);
  });

  test("the bounds are documented: 128 MiB a value, 256 MiB a header, arrays 8 deep", () => {
    expect(HEADER_LIMITS).toEqual({ valueBytes: 128 * MiB, headerBytes: 256 * MiB, arrayDepth: 8 });
  });
});

// ─── the event loop ───────────────────────────────────────────────────────────

describe("a large header does not stall the event loop", () => {
  test("2M tokens, a 24 MiB array, an 8 MiB string, 100,000 arrays in an array, 50,000 tensors: no timer waits 100 ms", () => {
    const path = join(dir, "wide.gguf");
    writeWideHeader(path);
    for (const how of ["path", "fd"]) {
      // Each read in a fresh process (test/support/event-loop-stall.ts), its timer ticking every 2 ms.
      const p = Bun.spawnSync([process.execPath, join(ROOT, "test/support/event-loop-stall.ts"), path, how], { cwd: ROOT });
      expect([how, p.exitCode, p.stderr.toString()]).toEqual([how, 0, ""]);
      const r = JSON.parse(p.stdout.toString()) as { longest: number; ticks: number; tensors: number; tokens: number; arrays: number; textLength: number };
      expect([r.tensors, r.tokens, r.arrays, r.textLength]).toEqual([WIDE.tensors, WIDE.tokens, WIDE.arrays, 2 * WIDE.textChars]);
      // The timer ran all along (not a pass by doing nothing), and never waited long.
      expect(r.ticks).toBeGreaterThan(20);
      expect([how, r.longest < 100 ? "under 100 ms" : `${r.longest.toFixed(0)} ms`]).toEqual([how, "under 100 ms"]);
    }
  }, 60_000);
});
