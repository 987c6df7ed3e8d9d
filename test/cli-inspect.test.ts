// bun run inspect: the documented JSON shape, exact 64-bit integers, and the
// exit codes and one-line errors of bad files and bad usage.

import { beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { fixtureModel, modelMetadata, modelTensors } from "../src/fixtures/models.ts";
import { CORRUPT_CASES, fileBytes } from "../src/fixtures/corrupt.ts";
import { encodeHeader } from "../src/gguf/writer.ts";
import { v } from "../src/fixtures/values.ts";
import { tempDirs } from "./support/temp.ts";

const cli = new URL("../src/cli/inspect.ts", import.meta.url).pathname;
const inspect = (...args: string[]) => {
  const p = Bun.spawnSync([process.execPath, cli, ...args], { env: { ...process.env, NO_COLOR: "1" } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

const Scalar = z.enum(["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bool", "string"]);
type JsonArray = { type: "array"; itemType: string; length: number; items?: JsonArray[] };
const JsonArray: z.ZodType<JsonArray> = z.lazy(() => z.object({ type: z.literal("array"), itemType: z.union([Scalar, z.literal("array")]), length: z.number(), items: z.array(JsonArray).optional() }).strict());
const InspectJson = z
  .object({
    file: z.string(),
    fileSize: z.number(),
    version: z.number(),
    alignment: z.number(),
    dataOffset: z.number(),
    metadata: z.record(z.string(), z.union([z.object({ type: Scalar, value: z.union([z.string(), z.number(), z.boolean()]) }).strict(), JsonArray])),
    shards: z.array(z.object({ file: z.string(), fileSize: z.number(), dataOffset: z.number(), tensors: z.number() }).strict()).min(1),
    tensors: z.array(z.object({ name: z.string(), type: z.string(), shape: z.array(z.number()), shard: z.number(), offset: z.number(), bytes: z.number() }).strict()),
    model: z.object({ architecture: z.string().nullable(), ok: z.boolean(), config: z.record(z.string(), z.unknown()).nullable(), tiedHead: z.boolean(), problems: z.array(z.object({ code: z.string(), message: z.string() }).passthrough()), warnings: z.array(z.string()) }),
  })
  .strict();

const tempDir = tempDirs();
let dir = "";
beforeAll(() => {
  dir = tempDir("gguf-vram-inspect-");
});

test("--json prints the documented shape, with offsets and the model check", async () => {
  const path = await ensureModelFixture("tiny-qwen2-q4_k_m");
  const r = inspect(path, "--json");
  expect(r.code).toBe(0);
  const doc = InspectJson.parse(JSON.parse(r.out));
  expect(doc.tensors).toHaveLength(27);
  expect(doc.tensors[0]).toMatchObject({ name: "token_embd.weight", type: "Q4_K", shape: [256, 512] });
  expect(doc.tensors[0]!.offset).toBe(doc.dataOffset);
  expect(doc.metadata["tokenizer.ggml.tokens"]).toEqual({ type: "array", itemType: "string", length: 512 });
  expect(doc.metadata["qwen2.attention.layer_norm_rms_epsilon"]).toEqual({ type: "f32", value: 1e-6 });
  expect(doc.model).toMatchObject({ architecture: "qwen2", ok: true, tiedHead: false, problems: [] });
  expect(doc.shards).toEqual([{ file: path, fileSize: doc.fileSize, dataOffset: doc.dataOffset, tensors: 27 }]);
});

test("integers beyond ±2^53 are decimal strings", () => {
  const path = join(dir, "big-ints.gguf");
  writeFileSync(path, fileBytes(encodeHeader({ metadata: [{ key: "a", value: v.u64(2n ** 64n - 1n) }, { key: "b", value: { type: "i64", value: -(2n ** 60n) } }, { key: "c", value: v.u64(42n) }], tensors: [] })));
  const doc = InspectJson.parse(JSON.parse(inspect(path, "--json").out));
  expect(doc.metadata.a).toEqual({ type: "u64", value: "18446744073709551615" });
  expect(doc.metadata.b).toEqual({ type: "i64", value: "-1152921504606846976" });
  expect(doc.metadata.c).toEqual({ type: "u64", value: 42 });
});

test("the text report: header, metadata, tensors, totals, the model", async () => {
  const r = inspect(await ensureModelFixture("tiny-llama-mixed"));
  expect(r.code).toBe(0);
  for (const heading of ["metadata", "tensors", "totals by type", "model"]) expect(r.out).toContain(`\n${heading}\n`);
  expect(r.out).toContain("LM head: tied to token_embd.weight");
  expect(r.out).toContain("✓ every expected tensor is present");
});

test("a bad file: exit code 1, one line on stderr naming the problem and where", () => {
  const path = join(dir, "zip.gguf");
  writeFileSync(path, CORRUPT_CASES.find((c) => c.name === "zip-magic")!.bytes());
  const r = inspect(path);
  expect(r.code).toBe(1);
  const lines = r.err.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`${path}: not a GGUF file`);
  expect(lines[0]).toContain("(at byte 0)");
  expect(r.err).not.toContain("    at ");
});

test("usage errors: exit code 2", () => {
  expect(inspect().code).toBe(2);
  expect(inspect("a.gguf", "b.gguf").code).toBe(2);
  expect(inspect("--bogus", "x.gguf").code).toBe(2);
  expect(inspect("--help").code).toBe(0);
});

test("an array of arrays (valid GGUF) is read and shown, and the model check says llama.cpp's reader refuses it", async () => {
  const m = fixtureModel("tiny-qwen2-q4_k_m");
  const grid = v.arrays([v.u32s(new Uint32Array([1, 2])), v.arrays([v.strings(["a"])])]);
  const path = join(dir, "grid.gguf");
  writeFileSync(path, fileBytes(encodeHeader({ metadata: [...(await modelMetadata(m)), { key: "test.grid", value: grid }], tensors: modelTensors(m) })));
  const problem = "test.grid is an array of arrays, which llama.cpp's GGUF reader (gguf.cpp) refuses: llama.cpp cannot open this file (--unchecked loads it here anyway)";
  const text = inspect(path);
  expect([text.code, text.err]).toEqual([0, ""]);
  expect(text.out).toMatch(/\n {2}test\.grid +array\[2\] +\[\[1, 2\], \[\["a"\]\]\]\n/);
  expect(text.out).toContain(`✗ ${problem}`);
  const json = inspect(path, "--json");
  const doc = InspectJson.parse(JSON.parse(json.out));
  expect(doc.metadata["test.grid"]).toEqual({
    type: "array",
    itemType: "array",
    length: 2,
    items: [{ type: "array", itemType: "u32", length: 2 }, { type: "array", itemType: "array", length: 1, items: [{ type: "array", itemType: "string", length: 1 }] }],
  });
  // The one problem: the model is otherwise whole.
  expect(doc.model).toMatchObject({ architecture: "qwen2", ok: false, problems: [{ code: "NESTED_ARRAY", key: "test.grid", message: problem }] });
});
