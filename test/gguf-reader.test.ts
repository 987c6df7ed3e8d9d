// The reader against files the writer builds: every value type, every version,
// exact 64-bit integers, and the derived offsets.

import { describe, expect, test } from "bun:test";
import { GgmlType, GgufError, HEADER_LIMITS, readGguf, StringArray, type GgufArray, type GgufValue } from "../src/gguf/index.ts";
import { encodeHeader, type WriteTensor } from "../src/gguf/writer.ts";
import { ALL_TYPES } from "../src/fixtures/all-types.ts";
import { fileBytes } from "../src/fixtures/corrupt.ts";
import { v } from "../src/fixtures/values.ts";

const blob = (b: Uint8Array) => new Blob([b]);

const TENSORS: WriteTensor[] = [
  { name: "tok", type: GgmlType.Q8_0, shape: [64, 3] },
  { name: "norm", type: GgmlType.F32, shape: [5] },
  { name: "k", type: GgmlType.Q4_K, shape: [256, 2, 1, 3] },
];

describe("metadata values", () => {
  test("all 13 value types, arrays of each (empty ones too) and arrays of arrays read back exactly", async () => {
    const g = await readGguf(blob(fileBytes(encodeHeader({ metadata: ALL_TYPES, tensors: [] }))));
    const get = (k: string): GgufValue => g.get(k)!;
    expect(get("t.u8")).toEqual({ type: "u8", value: 255 });
    expect(get("t.i8")).toEqual({ type: "i8", value: -128 });
    expect(get("t.u16")).toEqual({ type: "u16", value: 65535 });
    expect(get("t.i16")).toEqual({ type: "i16", value: -32768 });
    expect(get("t.u32")).toEqual({ type: "u32", value: 4294967295 });
    expect(get("t.i32")).toEqual({ type: "i32", value: -2147483648 });
    expect(get("t.f32")).toEqual({ type: "f32", value: 1.5 });
    expect(get("t.bool")).toEqual({ type: "bool", value: true });
    expect(get("t.string")).toEqual({ type: "string", value: "héllo, 世界 🌍" });
    expect(get("t.u64")).toEqual({ type: "u64", value: 18446744073709551615n });
    expect(get("t.i64")).toEqual({ type: "i64", value: -9223372036854775808n });
    expect(get("t.f64")).toEqual({ type: "f64", value: Math.PI });
    const arr = (k: string) => {
      const a = get(k);
      if (a.type !== "array") throw new Error(`${k} is not an array`);
      return a;
    };
    expect([...(arr("t.array.u8").items as Uint8Array)]).toEqual([1, 2, 255]);
    expect([...(arr("t.array.i16").items as Int16Array)]).toEqual([-1, 7]);
    expect([...(arr("t.array.f32").items as Float32Array)]).toEqual([0.25, -2]);
    expect([...(arr("t.array.u64").items as BigUint64Array)]).toEqual([2n ** 63n + 5n, 1n]);
    expect(arr("t.array.bool").itemType).toBe("bool");
    expect((arr("t.array.string").items as StringArray).toArray()).toEqual(["", "a", "ü", "x".repeat(300)]);
    expect(arr("t.array.empty")).toMatchObject({ itemType: "f64", length: 0 });
    const nested = arr("t.array.nested");
    expect(nested.itemType).toBe("array");
    const [first, second] = nested.items as readonly GgufArray[];
    expect((first!.items as StringArray).toArray()).toEqual(["in"]);
    expect([...(second!.items as Int32Array)]).toEqual([-9]);
    // As deep as the reader allows, each level beside an empty string array.
    let deep = arr("t.array.deepest");
    for (let d = 1; d < HEADER_LIMITS.arrayDepth; d++) {
      expect([d, deep.itemType, deep.length]).toEqual([d, "array", 2]);
      deep = (deep.items as readonly GgufArray[])[0]!;
    }
    expect([deep.itemType, deep.length]).toEqual(["array", 0]);
  });

  test("keys keep file order", async () => {
    const g = await readGguf(blob(fileBytes(encodeHeader({ metadata: ALL_TYPES, tensors: [] }))));
    expect([...g.metadata.keys()]).toEqual(ALL_TYPES.map((e) => e.key as string));
  });
});

describe("versions and layout", () => {
  for (const version of [1, 2, 3] as const) {
    test(`GGUF v${version} reads with offsets and sizes from the type table`, async () => {
      const h = encodeHeader({ version, metadata: [{ key: "general.alignment", value: v.u32(64) }, ...ALL_TYPES.filter((e) => e.key !== "general.alignment")], tensors: TENSORS });
      const g = await readGguf(blob(fileBytes(h)));
      expect(g.version).toBe(version);
      expect(g.alignment).toBe(64);
      expect(g.dataOffset % 64).toBe(0);
      expect(g.dataOffset).toBe(h.dataOffset);
      expect(g.tensors.map((t) => [t.name, t.bytes])).toEqual([
        ["tok", 2 * 34 * 3],
        ["norm", 20],
        ["k", 144 * 2 * 3],
      ]);
      expect(g.tensors.map((t) => t.offset)).toEqual(h.placements.map((p) => h.dataOffset + p.offset));
      expect(g.tensor("k")!.shape).toEqual([256, 2, 1, 3]);
      expect(g.tensor("k")!.elements).toBe(256 * 6);
    });
  }

  test("the default alignment is 32, and the data offset is the header end rounded up", async () => {
    const h = encodeHeader({ metadata: [{ key: "a", value: v.str("x") }], tensors: [TENSORS[1]!] });
    const g = await readGguf(blob(fileBytes(h)));
    expect(g.alignment).toBe(32);
    expect(g.dataOffset).toBe(Math.ceil(g.headerBytes / 32) * 32);
    expect(g.totalsByType()).toEqual([{ type: GgmlType.F32, name: "F32", count: 1, bytes: 20 }]);
  });

  test("tensors may be stored out of order; gaps are allowed", async () => {
    const h = encodeHeader({ metadata: [], tensors: [{ ...TENSORS[1]!, offset: 256n }, { ...TENSORS[0]!, offset: 0n }] });
    const g = await readGguf(blob(fileBytes(h)));
    expect(g.tensors.map((t) => t.relativeOffset)).toEqual([256, 0]);
  });

  test("a file with no tensors and no keys is valid", async () => {
    const g = await readGguf(blob(fileBytes(encodeHeader({ metadata: [], tensors: [] }))));
    expect(g.metadata.size).toBe(0);
    expect(g.tensors).toEqual([]);
  });
});

describe("errors", () => {
  test("carry a code, the byte offset and a hint", async () => {
    const b = fileBytes(encodeHeader({ metadata: [], tensors: [] }));
    b.set([0x50, 0x4b, 0x03, 0x04]);
    const e = await readGguf(blob(b)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(GgufError);
    const err = e as GgufError;
    expect(err.code).toBe("NOT_GGUF");
    expect(err.offset).toBe(0);
    expect(err.message).toContain("is this a zip archive");
    expect(err.hint.length).toBeGreaterThan(10);
  });

  test("a missing path, a directory", async () => {
    await expect(readGguf("/nonexistent/model.gguf")).rejects.toMatchObject({ code: "FILE_NOT_FOUND" });
    await expect(readGguf(import.meta.dir)).rejects.toMatchObject({ code: "IS_A_DIRECTORY" });
  });
});
