// An upload worker: opens the library, creates the device context and its own
// pinned ring on init, then runs the spans it is given. Native calls block the
// thread they run on; several workers read and copy in parallel.

import type { Pointer } from "bun:ffi";
import { Device, openCuda, Stager } from "../cuda/index.ts";
import { toLoadError } from "./errors.ts";
import { runSpans, type UploadSignals } from "./spans.ts";
import type { FromWorker, ToWorker } from "./worker-protocol.ts";

declare const self: Worker;

let stager: Stager | null = null;
let signals: UploadSignals | null = null;

const send = (m: FromWorker) => self.postMessage(m);

function fail(e: unknown): void {
  const err = toLoadError(e);
  const detail = err.cause instanceof Error ? err.cause.message : undefined;
  send({ type: "error", error: { name: err.name, code: err.code, message: err.message, hint: err.hint, detail } });
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  try {
    switch (m.type) {
      case "init": {
        const t = performance.now();
        await openCuda(m.libraryPath);
        Device.open(m.device).close();
        stager = Stager.create(m.device, m.slots, m.slotBytes);
        signals = m.signals;
        send({ type: "ready", initMs: performance.now() - t });
        break;
      }
      case "upload": {
        if (!stager || !signals) throw new Error("upload before init");
        const t = performance.now();
        const bytes = runSpans({ fd: m.fd, path: m.path, stager, arena: m.arena as Pointer, spans: m.spans, parties: m.parties, schedule: m.schedule, signals });
        send({ type: "done", bytes, ms: performance.now() - t });
        break;
      }
      case "close":
        stager?.close();
        stager = null;
        send({ type: "closed" });
        break;
    }
  } catch (e) {
    // Let the others stop early, and let copies already enqueued finish before
    // the main thread frees the arena they write to. The ring is freed on close.
    if (signals) Atomics.store(signals.stop, 0, 1);
    try {
      stager?.sync();
    } catch {
      // the stream is already broken; close() still frees the ring
    }
    fail(e);
  }
};
