// A model whose arena is larger than any GPU: the tiny qwen2 layout with a
// vocabulary of 2^27 tokens in F32 (~256 GiB of tensors), written as a sparse
// file: a real header, and a data section that is a hole. The vocabulary size
// comes from qwen2.vocab_size (a tokenizer of 2^27 tokens would be a 2 GiB
// header), so the tokenizer's arrays are left out and the registry still passes it.

import { join } from "node:path";
import { GgmlType } from "../../src/gguf/index.ts";
import { encodeHeader, writeGgufFile } from "../../src/gguf/writer.ts";
import { fixtureModel, modelMetadata, modelTensors } from "../../src/fixtures/models.ts";
import { v } from "../../src/fixtures/values.ts";

const TOKENIZER_ARRAYS = new Set(["tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"]);

export async function hugeSparseModel(dir: string): Promise<string> {
  const m = fixtureModel("tiny-qwen2-q4_k_m");
  const vocab = 2 ** 27;
  const metadata = [
    ...(await modelMetadata(m)).filter((e) => !TOKENIZER_ARRAYS.has(String(e.key))),
    { key: "qwen2.vocab_size", value: v.u32(vocab) },
  ];
  const tensors = modelTensors(m).map((t) =>
    t.name === "token_embd.weight" || t.name === "output.weight" ? { ...t, type: GgmlType.F32, shape: [m.config.hiddenSize, vocab] } : t,
  );
  const path = join(dir, "huge.sparse.gguf");
  writeGgufFile(path, encodeHeader({ metadata, tensors }), () => {}, { sparse: true });
  return path;
}
