// An upload worker: opens the library, creates the device context and its own
// pinned ring on init (the native call publishes the ring's handle in shared
// memory, so the pool can free it should this thread die), then runs the jobs
// it is given: uploads, and host checksums for verify. Native calls block the
// thread they run on; several workers read and copy in parallel. Each native
// step does a few spans and returns, so a terminate() takes effect between
// steps; every step passes this worker's gate, so the pool frees nothing this
// thread may still be using (workers.ts).

import type { Pointer } from "bun:ffi";
import { checksumFileStep, Device, openCudaAt, Stager, UploadShared, uploadStep } from "../cuda/index.ts";
import { CHECKSUM_CHUNK, jobFromMessage } from "./spans.ts";
import type { FromWorker, ToWorker } from "./worker-protocol.ts";

declare const self: Worker;

/** Spans (2 MiB each by default) per native step: short enough to stop promptly. */
const SPANS_PER_STEP = 4;
const CHUNKS_PER_STEP = 4;

let id = -1;
let stager: Stager | null = null;
let ring: BigUint64Array | null = null;
let gate: Int32Array | null = null;
let checksumBuffer: Uint8Array | null = null;

const send = (m: FromWorker) => self.postMessage(m);

function fail(e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  const fields = err as Error & { code?: string; hint?: string; cudaError?: number; osError?: number };
  send({ type: "error", error: { name: err.name, code: fields.code ?? "UPLOAD_FAILED", message: err.message, hint: fields.hint ?? "", cudaError: fields.cudaError, osError: fields.osError } });
}

/** Frees the ring, unless the pool took it first (whoever takes the published handle frees it). */
function closeRing(): void {
  const s = stager;
  stager = null;
  if (ring && Atomics.exchange(ring, 0, 0n) === 0n) return;
  s?.close();
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  try {
    switch (m.type) {
      case "init": {
        const t = performance.now();
        id = m.id;
        ring = m.ring;
        gate = m.gate;
        openCudaAt(m.libraryPath);
        if (m.device !== null) {
          Device.open(m.device).close();
          stager = Stager.create(m.device, m.slots, m.slotBytes, m.hugePages, { gate, publish: ring });
        }
        send({ type: "ready", initMs: performance.now() - t });
        break;
      }
      case "upload": {
        if (!stager) throw new Error("upload before init, or on a checksum-only worker");
        const t = performance.now();
        const job = jobFromMessage(m.job);
        const run = new Int32Array(2);
        let bytes = 0;
        for (let step = { bytes: 0, finished: false }; !step.finished; ) {
          step = uploadStep(stager, m.arena as Pointer, job, id, run, SPANS_PER_STEP, gate);
          bytes += step.bytes;
        }
        send({ type: "done", bytes, ms: performance.now() - t });
        break;
      }
      case "checksum": {
        checksumBuffer ??= new Uint8Array(CHECKSUM_CHUNK);
        const shared = new UploadShared(m.shared);
        while (!checksumFileStep(m.chunks, m.sums, shared, checksumBuffer, CHUNKS_PER_STEP, gate).finished);
        send({ type: "checksummed" });
        break;
      }
      case "close":
        closeRing();
        send({ type: "closed" });
        break;
      case "crash":
        // For tests: an exception outside the handler's care, as a bug would throw.
        queueMicrotask(() => {
          throw new Error(m.message);
        });
        break;
    }
  } catch (e) {
    // The native step already stopped the others and drained this ring's stream.
    fail(e);
  }
};
