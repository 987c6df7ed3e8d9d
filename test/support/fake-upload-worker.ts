// A stand-in upload worker for testing the pool on machines without a GPU: it
// speaks the real protocol and does what gv_upload_step does to a job's shared
// state (claims runs of spans with compare-and-swap, marks claims, counts
// bytes) without moving any. FAKE_WORKER_MODE, a comma-separated list, picks
// misbehaviours for tests:
//   throw:N   worker N throws an uncaught exception on its first upload
//   exit:N    worker N ends its thread during its first upload, after a span
//   skip:N    worker N claims spans but leaves one unmarked (breaks the invariant)
//   initfail:N  worker N fails its start as a ring that cannot be pinned would (every time, while set)
//   slow      every span takes 2 ms (so uploads overlap and can be cancelled)

import type { FromWorker, ToWorker } from "../../src/load/worker-protocol.ts";

declare const self: Worker;

let id = -1;
let uploads = 0;
const send = (m: FromWorker) => self.postMessage(m);
/** Whether `what` is on for this worker ("slow" for all; "throw:1" for worker 1). */
const on = (what: string) => (process.env.FAKE_WORKER_MODE ?? "").split(",").some((m) => m === what || m === `${what}:${id}`);

function runJob(m: Extract<ToWorker, { type: "upload" }>): number {
  const { spans, spanCount, claims, shared } = m.job;
  const state = new Int32Array(shared);
  const bytesDone = new BigUint64Array(shared);
  const slow = on("slow");
  let bytes = 0;
  let skipped = false;
  for (;;) {
    if (Atomics.load(state, 1) !== 0) throw Object.assign(new Error("gv_upload_step: stopped"), { name: "CudaError", code: "CANCELLED" });
    const first = Atomics.load(state, 0);
    if (first >= spanCount) return bytes;
    if (Atomics.compareExchange(state, 0, first, first + 1) !== first) continue;
    if (slow) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    if (on("skip") && !skipped) {
      skipped = true; // claimed, never marked, never counted
      continue;
    }
    if (Atomics.exchange(claims, first, id + 1) !== 0) throw new Error(`span ${first} claimed twice`);
    const n = Number(spans[Number(spans[first]!) + 2]!);
    Atomics.add(bytesDone, 1, BigInt(n));
    bytes += n;
    if (on("exit") && uploads === 1) process.exit(7);
  }
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  // Outside the handler's care, as a bug would throw: the thread ends before the next message.
  if (m.type === "upload" && on("throw") && uploads === 0) throw new Error(`fake worker ${id} broke`);
  try {
    switch (m.type) {
      case "init":
        id = m.id;
        if (on("initfail")) {
          send({ type: "error", error: { name: "CudaError", code: "HOST_MEMORY", message: "gv_stager_create: cudaHostRegister of 6.0 MiB failed: injected fault (GV_FAULT_HOST_PIN)", hint: "" } });
          break;
        }
        send({ type: "ready", initMs: 1 });
        break;
      case "upload": {
        uploads++;
        send({ type: "done", bytes: runJob(m), ms: 1 });
        break;
      }
      case "checksum":
        send({ type: "checksummed" });
        break;
      case "close":
        send({ type: "closed" });
        break;
      case "crash":
        setTimeout(() => {
          throw new Error(m.message);
        });
        break;
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    send({ type: "error", error: { name: err.name, code: err.code ?? "UPLOAD_FAILED", message: err.message, hint: "" } });
  }
};
