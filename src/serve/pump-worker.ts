// The server's socket pump: a Worker that blocks in gv_ipc_wait (accepting
// connections, reading frames, sending what the JS thread queued) and hands
// every event to the JS thread, which never blocks on the socket. It ends when
// the server is stopped (GV_IPC_STOPPED).

import type { Pointer } from "bun:ffi";
import { IpcServer, openCudaAt, type IpcEvent } from "../cuda/index.ts";

declare const self: Worker & { close(): void };

export interface PumpStart {
  readonly libraryPath: string;
  /** The server's native handle (same process). */
  readonly handle: number;
}

export type PumpMessage = { readonly type: "events"; readonly events: IpcEvent[] } | { readonly type: "failed"; readonly message: string };

/** Room for a burst of events: a request is at most 64 KiB, and the wait reports as many as fit. */
const BUFFER_BYTES = 1 << 20;

self.onmessage = (event: MessageEvent<PumpStart>) => {
  const { libraryPath, handle } = event.data;
  try {
    openCudaAt(libraryPath);
    const buffer = new Uint8Array(BUFFER_BYTES);
    for (;;) {
      const events = IpcServer.wait(Number(handle) as Pointer, -1, buffer);
      if (events.length > 0) self.postMessage({ type: "events", events } satisfies PumpMessage);
      if (events.some((e) => e.type === "stopped")) break;
    }
  } catch (e) {
    self.postMessage({ type: "failed", message: e instanceof Error ? e.message : String(e) } satisfies PumpMessage);
  }
  self.close();
};
