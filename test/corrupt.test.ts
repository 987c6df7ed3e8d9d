// Every corrupt case is refused with its own error code, and nothing else is thrown.

import { describe, expect, test } from "bun:test";
import { CORRUPT_CASES, baseFile } from "../src/fixtures/corrupt.ts";
import { BROKEN_MODEL_CASES } from "../src/fixtures/broken-models.ts";
import { GgufError, readGguf } from "../src/gguf/index.ts";
import { checkModel } from "../src/arch/index.ts";

test("the base of the corrupt cases is itself valid", async () => {
  const g = await readGguf(new Blob([baseFile()]));
  expect(g.tensors.length).toBe(3);
  expect(g.metadata.size).toBe(5);
});

test("the case names are unique", () => {
  expect(new Set(CORRUPT_CASES.map((c) => c.name)).size).toBe(CORRUPT_CASES.length);
});

describe("corrupt GGUF files", () => {
  for (const c of CORRUPT_CASES) {
    test(`${c.name} → ${c.expect}`, async () => {
      const error = await readGguf(new Blob([c.bytes()])).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(GgufError);
      const e = error as GgufError;
      expect(e.code).toBe(c.expect);
      expect(e.offset).toBeGreaterThanOrEqual(0);
      expect(e.message.length).toBeGreaterThan(10);
      expect(e.hint.length).toBeGreaterThan(10);
    });
  }
});

describe("well-formed files that are broken models", () => {
  for (const c of BROKEN_MODEL_CASES) {
    test(`${c.name} → ${c.expect}`, async () => {
      const check = checkModel(await readGguf(new Blob([await c.bytes()])));
      expect(check.ok).toBe(false);
      expect(check.problems.map((p) => p.code)).toContain(c.expect);
    });
  }
});
