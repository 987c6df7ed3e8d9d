// An IpcServer with its pump Worker, for tests: events arrive on this thread
// as the real server gets them, and a test awaits the ones it expects.

import { readdirSync, readlinkSync } from "node:fs";
import { IpcServer, nativePath, type IpcEvent } from "../../src/cuda/index.ts";

const PUMP = new URL("./ipc-pump-worker.ts", import.meta.url).href;

export class PumpedServer {
  readonly server: IpcServer;
  /** Events that arrived and no test took yet, oldest first. */
  readonly pending: IpcEvent[] = [];
  /** Failures of the wait itself (the Worker keeps waiting after one). */
  readonly waitErrors: string[] = [];
  /** Called for every event as it arrives (a stand-in server answers here); it still lands in `pending`. */
  onEvent: ((event: IpcEvent) => void) | null = null;
  readonly #worker: Worker;
  readonly #done: Promise<void>;
  #wake: (() => void) | null = null;

  constructor(readonly path: string) {
    this.server = IpcServer.listen(path);
    this.#worker = new Worker(PUMP);
    let finished: () => void = () => {};
    this.#done = new Promise((resolve) => (finished = resolve));
    this.#worker.onmessage = (message: MessageEvent<{ events?: IpcEvent[]; error?: string; done?: boolean }>) => {
      if (message.data.error) this.waitErrors.push(message.data.error);
      for (const event of message.data.events ?? []) {
        this.onEvent?.(event);
        this.pending.push(event);
      }
      if (message.data.done) finished();
      this.#wake?.();
    };
    this.#worker.postMessage({ libraryPath: nativePath(), handle: this.server.handle });
  }

  /** The first pending event that matches (taken out of `pending`); fails after timeoutMs. */
  async next(matches: (event: IpcEvent) => boolean = () => true, timeoutMs = 10_000): Promise<IpcEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.pending.findIndex(matches);
      if (index >= 0) return this.pending.splice(index, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such event within ${timeoutMs} ms; pending: ${JSON.stringify(this.pending)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** The next event of `type` (for `conn`, when given). */
  nextOf(type: IpcEvent["type"], conn?: number, timeoutMs?: number): Promise<IpcEvent> {
    return this.next((event) => event.type === type && (conn === undefined || event.conn === conn), timeoutMs);
  }

  /** Stops the server (if a test did not), waits for the Worker's last batch, frees the server. */
  async close(): Promise<void> {
    if (this.server.closed) return;
    this.server.stop();
    await this.#done;
    this.#worker.terminate();
    this.server.close();
  }
}

/**
 * The descriptors this process has open (/proc/self/fd) whose target starts with `target`
 * (a file's path, or "socket:"), for leak checks that Bun's own descriptors do not disturb.
 */
export function openDescriptors(target: string): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(target)) count++;
    } catch {
      // closed while we looked (the listing's own descriptor, for one)
    }
  }
  return count;
}
