// A model with thousands of tensors: the tiny llama layout with 600 layers
// (5,403 tensors), written sparse (a real header, the data section a hole), so
// `--json` documents run past a megabyte.

import { join } from "node:path";
import { encodeHeader, writeGgufFile } from "../../src/gguf/writer.ts";
import { fixtureModel, modelMetadata, modelTensors, type FixtureModel } from "../../src/fixtures/models.ts";

export async function wideSparseModel(dir: string): Promise<string> {
  const base = fixtureModel("tiny-llama-mixed");
  const m: FixtureModel = { ...base, config: { ...base.config, layers: 600 } };
  const path = join(dir, "wide.sparse.gguf");
  writeGgufFile(path, encodeHeader({ metadata: await modelMetadata(m), tensors: modelTensors(m) }), () => {}, { sparse: true });
  return path;
}
