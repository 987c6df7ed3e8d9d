// Loads argv[2] in a child process and prints one JSON line: the outcome and
// what the library still holds afterwards. Tests run it with a different
// environment (CUDA_VISIBLE_DEVICES= hides every GPU).

import { liveResources } from "../../src/cuda/index.ts";
import { load, LoadError } from "../../src/load/index.ts";

const path = process.argv[2]!;
try {
  const model = await load(path, { device: Number(process.env.DEVICE ?? 0) });
  const tensors = model.tensors.size;
  model.close();
  console.log(JSON.stringify({ ok: true, tensors, live: liveResources() }));
} catch (e) {
  const err = e as LoadError;
  let live = null;
  try {
    live = liveResources();
  } catch {
    // the library may not be open if the failure came first
  }
  console.log(JSON.stringify({ ok: false, code: err.code, exitCode: err.exitCode, message: err.message, hint: err.hint, live }));
}
