// A model with thousands of tensors: the tiny llama layout with 512 layers
// (llama.cpp's most) and every optional bias (8,195 tensors), written sparse (a
// real header, the data section a hole), so `--json` documents run past a megabyte.

import { join } from "node:path";
import { encodeHeader, writeGgufFile } from "../../src/gguf/writer.ts";
import { fixtureModel, modelMetadata, modelTensors, type FixtureModel } from "../../src/fixtures/models.ts";

export async function wideSparseModel(dir: string): Promise<{ path: string; tensors: number }> {
  const base = fixtureModel("tiny-llama-mixed");
  const m: FixtureModel = { ...base, config: { ...base.config, layers: 512 }, include: (t) => t.endsWith(".bias") };
  const path = join(dir, "wide.sparse.gguf");
  const tensors = modelTensors(m);
  writeGgufFile(path, encodeHeader({ metadata: await modelMetadata(m), tensors }), () => {}, { sparse: true });
  return { path, tensors: tensors.length };
}
