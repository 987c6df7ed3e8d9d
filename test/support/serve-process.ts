// Driving a server process from a test: start it, wait for its events, kill it.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CHILD = new URL("./serve-child.ts", import.meta.url).pathname;

export interface ServerProcess {
  readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  readonly socket: string;
  /** Every event line so far, parsed. */
  readonly events: { type: string; [k: string]: unknown }[];
  /** Waits until an event of `type` (matching `where`) has come, or fails after `ms`. */
  waitFor(type: string, where?: (e: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  stderr(): string;
}

/** A private folder for a socket, removed by `cleanup`. */
export function socketFolder(): { dir: string; socket: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "gguf-vram-serve-"));
  return { dir, socket: join(dir, "s.sock"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startServer(socket: string, args: string[] = [], argv: string[] = [process.execPath, CHILD, socket, ...args], env: Record<string, string | undefined> = {}): Promise<ServerProcess> {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const events: { type: string }[] = [];
  let err = "";
  void (async () => {
    let buffered = "";
    for await (const chunk of proc.stdout) {
      buffered += new TextDecoder().decode(chunk);
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) if (line.startsWith("{")) events.push(JSON.parse(line));
    }
  })();
  void (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
  })();
  const server: ServerProcess = {
    proc,
    socket,
    events: events as ServerProcess["events"],
    async waitFor(type, where = () => true, ms = 30_000) {
      const t0 = performance.now();
      for (;;) {
        const e = events.find((x) => x.type === type && where(x as Record<string, unknown>));
        if (e) return e as Record<string, unknown>;
        if (proc.exitCode !== null) throw new Error(`the server exited (${proc.exitCode}) before "${type}": ${err}`);
        if (performance.now() - t0 > ms) throw new Error(`no "${type}" event within ${ms} ms; events: ${JSON.stringify(events)}; stderr: ${err}`);
        await Bun.sleep(5);
      }
    },
    stderr: () => err,
  };
  await server.waitFor("listening");
  return server;
}
