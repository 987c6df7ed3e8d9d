// A server in a process of its own, for what needs another process: a lock held
// by someone else, a socket file left by a server killed with SIGKILL, a server
// that dies in the middle of a request.
//   bun ipc-child.ts <socket> serve   listens, prints "listening", answers hello and prints
//                                     "request <op>" for anything else, until killed
//   bun ipc-child.ts <socket> try     listens once and prints {"ok"} or {"code","message"}

import { IPC_EVENT_BUFFER_BYTES, IpcServer, openCuda } from "../../src/cuda/index.ts";

const [path, mode] = process.argv.slice(2) as [string, string];
await openCuda();
let server: IpcServer;
try {
  server = IpcServer.listen(path);
} catch (e) {
  const error = e as { code: string; message: string };
  console.log(JSON.stringify({ code: error.code, message: error.message }));
  process.exit(0);
}
if (mode === "try") {
  console.log(JSON.stringify({ ok: true }));
  server.stop();
  server.close();
  process.exit(0);
}
console.log("listening");
const buffer = new Uint8Array(IPC_EVENT_BUFFER_BYTES);
for (;;) {
  for (const event of IpcServer.wait(server.handle, -1, buffer)) {
    if (event.type !== "message") continue;
    const request = JSON.parse(event.text) as { id: number; op: string };
    if (request.op === "hello") server.send(event.conn, JSON.stringify({ v: 1, id: request.id, ok: true, op: "hello", server: "child", pid: process.pid, protocol: 1 }));
    else console.log(`request ${request.op}`);
  }
}
