// A resident-model server in a process of its own, for tests: the library's
// server with no GPU check (so the protocol can be tested on machines without
// one), its events as JSON lines on stdout, SIGTERM stops it.
//   bun test/support/serve-child.ts SOCKET [keepAliveMs] [budgetBytes]

import { readFileSync } from "node:fs";
import { ResidentServer } from "../../src/serve/server.ts";

const [socket, keepAlive, budget] = process.argv.slice(2);
// Before the server exists (it says "listening" as it starts): a SIGTERM then must stop it, not kill the process.
let stopRequested = false;
let server: ResidentServer | null = null;
process.on("SIGTERM", () => {
  stopRequested = true;
  void server?.stop();
});
server = await ResidentServer.start({
  socket: socket!,
  ...(keepAlive ? { keepAliveMs: Number(keepAlive) } : {}),
  ...(budget ? { budgets: Number(budget) } : {}),
  onEvent: (e) => process.stdout.write(`${JSON.stringify(e)}\n`),
});
if (stopRequested) void server.stop();
// Tests of growth: SIGUSR2 collects garbage, then reports the resident memory as an event.
let gcs = 0;
process.on("SIGUSR2", () => {
  Bun.gc(true);
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]);
  process.stdout.write(`${JSON.stringify({ type: "rss", seq: ++gcs, rssKiB })}\n`);
});
await server.done;
await server.stop();
process.exit(0);
