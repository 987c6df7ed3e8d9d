// Every real GGUF file (llama.cpp's vocab-only files) parses, with the key
// count and array lengths an independent reader found in it.

import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readGguf } from "../src/gguf/index.ts";
import { vocabDir } from "../src/fixtures/tokenizer.ts";

const EXPECTED: Record<string, { keys: number; arrays: Record<string, number> }> = {
  "ggml-vocab-baichuan.gguf": { keys: 18, arrays: { "tokenizer.ggml.tokens": 64000, "tokenizer.ggml.scores": 64000, "tokenizer.ggml.token_type": 64000 } },
  "ggml-vocab-bert-bge.gguf": { keys: 20, arrays: { "tokenizer.ggml.tokens": 30522, "tokenizer.ggml.token_type": 30522 } },
  "ggml-vocab-deepseek-coder.gguf": { keys: 25, arrays: { "tokenizer.ggml.tokens": 32256, "tokenizer.ggml.token_type": 32256, "tokenizer.ggml.merges": 31757 } },
  "ggml-vocab-deepseek-llm.gguf": { keys: 23, arrays: { "tokenizer.ggml.tokens": 102400, "tokenizer.ggml.token_type": 102400, "tokenizer.ggml.merges": 99757 } },
  "ggml-vocab-falcon.gguf": { keys: 18, arrays: { "tokenizer.ggml.tokens": 65024, "tokenizer.ggml.token_type": 65024, "tokenizer.ggml.merges": 64784 } },
  "ggml-vocab-gpt-2.gguf": { keys: 16, arrays: { "tokenizer.ggml.tokens": 50257, "tokenizer.ggml.token_type": 50257, "tokenizer.ggml.merges": 50000 } },
  "ggml-vocab-gpt-neox.gguf": { keys: 17, arrays: { "tokenizer.ggml.tokens": 50432, "tokenizer.ggml.token_type": 50432, "tokenizer.ggml.merges": 50009 } },
  "ggml-vocab-llama-spm.gguf": { keys: 22, arrays: { "tokenizer.ggml.tokens": 32000, "tokenizer.ggml.scores": 32000, "tokenizer.ggml.token_type": 32000 } },
  "ggml-vocab-mpt.gguf": { keys: 17, arrays: { "tokenizer.ggml.tokens": 50432, "tokenizer.ggml.token_type": 50432, "tokenizer.ggml.merges": 50009 } },
  "ggml-vocab-phi-3.gguf": { keys: 26, arrays: { "tokenizer.ggml.tokens": 32064, "tokenizer.ggml.scores": 32064, "tokenizer.ggml.token_type": 32064 } },
  "ggml-vocab-qwen2.gguf": { keys: 20, arrays: { "tokenizer.ggml.tokens": 151936, "tokenizer.ggml.token_type": 151936, "tokenizer.ggml.merges": 151387 } },
  "ggml-vocab-refact.gguf": { keys: 18, arrays: { "tokenizer.ggml.tokens": 49216, "tokenizer.ggml.token_type": 49216, "tokenizer.ggml.merges": 48891 } },
  "ggml-vocab-starcoder.gguf": { keys: 19, arrays: { "tokenizer.ggml.tokens": 49152, "tokenizer.ggml.token_type": 49152, "tokenizer.ggml.merges": 48872 } },
};

const dir = vocabDir();
const present = existsSync(join(dir, "ggml-vocab-qwen2.gguf"));

describe.skipIf(!present)(`real GGUF files in ${dir}${present ? "" : " (folder absent: skipped)"}`, () => {
  for (const [file, want] of Object.entries(EXPECTED)) {
    test.skipIf(!existsSync(join(dir, file)))(file, async () => {
      const g = await readGguf(join(dir, file));
      expect(g.version).toBe(3);
      expect(g.metadata.size).toBe(want.keys);
      expect(g.tensors.length).toBe(0);
      const arrays = Object.fromEntries([...g.metadata].filter(([, v]) => v.type === "array").map(([k, v]) => [k, v.type === "array" ? v.length : -1]));
      expect(arrays).toEqual(want.arrays);
      // No tensors: the header is the whole file.
      expect(g.headerBytes).toBe(g.fileSize);
    });
  }

  test("qwen2 tokenizer strings decode to the real tokens", async () => {
    const g = await readGguf(join(dir, "ggml-vocab-qwen2.gguf"));
    const tokens = g.get("tokenizer.ggml.tokens");
    const merges = g.get("tokenizer.ggml.merges");
    if (tokens?.type !== "array" || tokens.itemType !== "string" || merges?.type !== "array" || merges.itemType !== "string") throw new Error("expected string arrays");
    expect(tokens.items.get(0)).toBe("!");
    expect(tokens.items.get(151643)).toBe("<|endoftext|>");
    expect(tokens.items.get(151645)).toBe("<|im_end|>");
    expect(merges.items.get(0)).toBe("Ġ Ġ");
    // Every string decodes (they were validated in bulk; decode each to be sure).
    let chars = 0;
    for (const s of tokens.items) chars += s.length;
    expect(chars).toBeGreaterThan(151936);
    expect(g.string("general.architecture")).toBe("qwen2");
  });

  test.skipIf(!existsSync(join(dir, "ggml-vocab-llama-spm.gguf")))("the window size does not change the result", async () => {
    const path = join(dir, "ggml-vocab-llama-spm.gguf");
    const whole = await readGguf(path);
    for (const initialWindow of [1, 31, 33, 4097, 65_536]) {
      const g = await readGguf(path, { initialWindow });
      expect([...g.metadata.keys()]).toEqual([...whole.metadata.keys()]);
      expect(g.headerBytes).toBe(whole.headerBytes);
      const a = g.get("tokenizer.ggml.tokens");
      const b = whole.get("tokenizer.ggml.tokens");
      if (a?.type !== "array" || a.itemType !== "string" || b?.type !== "array" || b.itemType !== "string") throw new Error("expected string arrays");
      expect(a.items.get(31_999)).toBe(b.items.get(31_999));
    }
  });
});
