// The server's pump, as src/serve runs it: a Worker that blocks in the native
// wait (gv_ipc_wait) and posts each batch of events to the thread that answers.
//   { libraryPath, handle } → { events } batches until one holds "stopped", then { done: true }

import { IPC_EVENT_BUFFER_BYTES, IpcServer, openCudaAt, type IpcEvent } from "../../src/cuda/index.ts";

declare const self: Worker;

self.onmessage = (message: MessageEvent<{ libraryPath: string; handle: number }>) => {
  const { libraryPath, handle } = message.data;
  openCudaAt(libraryPath);
  const buffer = new Uint8Array(IPC_EVENT_BUFFER_BYTES);
  for (;;) {
    let events: IpcEvent[];
    try {
      events = IpcServer.wait(handle as unknown as Parameters<typeof IpcServer.wait>[0], -1, buffer);
    } catch (error) {
      self.postMessage({ error: (error as Error).message });
      continue;
    }
    self.postMessage({ events });
    if (events.some((event) => event.type === "stopped")) break;
  }
  self.postMessage({ done: true });
};
