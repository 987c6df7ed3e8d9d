// A worker thread that makes one long native call through its gate: to show
// when a terminated thread really stops, and that what it owed fails only after.
//   init    { libraryPath, gate }: opens the library, answers "ready"
//   upload  { returned, ms }: blocks in native code for `ms`, then answers "done"

import { openCudaAt } from "../../src/cuda/index.ts";
import { debugBlock } from "../../src/cuda/testing.ts";

declare const self: Worker;

let gate: Int32Array | null = null;

self.onmessage = (event: MessageEvent<{ type: string; libraryPath: string; gate: Int32Array; returned: Int32Array; ms: number }>) => {
  const m = event.data;
  if (m.type === "init") {
    openCudaAt(m.libraryPath);
    gate = m.gate;
    self.postMessage({ type: "ready", initMs: 0 });
  } else if (m.type === "upload") {
    debugBlock(m.ms, m.returned, gate);
    self.postMessage({ type: "done", bytes: 0, ms: m.ms });
  }
};
