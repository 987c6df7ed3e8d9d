// libgguf_vram_client (cuda/client/) without a GPU, driven through Python's
// ctypes as a C program would call it, against a stand-in server on IpcServer
// and against raw sockets that send what no server should: the greeting, loads
// with their events, requests and refusals, attach up to the mapping (which a
// machine without a GPU cannot do) with every malformed tensor table refused,
// a server that dies, and hostile replies, never a crash nor a leaked descriptor.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureClientLibrary } from "../build.ts";
import { openCuda } from "../src/cuda/index.ts";
import { encodeTensorTable } from "../src/serve/protocol.ts";
import { gpu } from "./support/gpu.ts";
import { frame } from "./support/ipc-frames.ts";
import { STAND_IN_PARTS, STAND_IN_TENSORS, StandInServer } from "./support/stand-in-server.ts";
import { tempDirs } from "./support/temp.ts";

await openCuda();
const client = await ensureClientLibrary({ quiet: true });
setDefaultTimeout(60_000); // each test starts Python processes, slow on a busy machine
const tempDir = tempDirs();
const DRIVER = new URL("./support/gvc_driver.py", import.meta.url).pathname;

/** gvc_status (cuda/client/gguf_vram_client.h). */
const GVC = { OK: 0, INVALID_ARGUMENT: 1, NO_SERVER: 2, SERVER: 3, PROTOCOL: 4, DISCONNECTED: 5, SOCKET: 6, NO_DEVICE: 7, CUDA: 8, TIMEOUT: 9 } as const;

interface Step {
  call: string;
  [key: string]: unknown;
}
interface Result {
  call: string;
  rc: number;
  error: string;
  code: string;
  [key: string]: unknown;
}

/** Runs the steps in one Python process against the client library; every step's result. */
async function drive(steps: Step[], env: Record<string, string> = {}): Promise<Result[]> {
  // The driver sees no GPU on any machine: the descriptors of the stand-in server are not real allocations.
  const child = Bun.spawn(["python3", DRIVER, client.library, JSON.stringify(steps)], { stdout: "pipe", stderr: "pipe", env: { ...process.env, CUDA_VISIBLE_DEVICES: "", ...env } });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`the driver exited with ${code} (a crash is a failure too): ${err}\n${out}`);
  return out.split("\n").filter(Boolean).map((line) => JSON.parse(line) as Result);
}

function socketPath(): string {
  return join(tempDir("gguf-vram-client-"), "serve.sock");
}

async function withStandIn(fn: (standIn: StandInServer) => Promise<void>): Promise<void> {
  const standIn = new StandInServer(socketPath());
  try {
    await fn(standIn);
  } finally {
    await standIn.close();
  }
}

// ─── connecting ───────────────────────────────────────────────────────────────

describe("connecting", () => {
  test("gvc_connect greets the server (hello, its name, the pid the socket confirms); gvc_close ends the connection", async () => {
    await withStandIn(async (standIn) => {
      const [connect, close] = await drive([{ call: "connect", socket: standIn.pumped.path }, { call: "close" }]);
      expect(connect).toMatchObject({ rc: GVC.OK });
      expect(close).toMatchObject({ rc: GVC.OK });
      const [hello] = standIn.received;
      expect(hello!.request).toEqual({ v: 1, id: 1, op: "hello", client: "libgguf_vram_client", pid: hello!.pid });
      expect((await standIn.pumped.nextOf("closed", hello!.conn)).text).toBe("the client closed the connection");
    });
  });

  test("nothing listening: GVC_ERR_NO_SERVER naming the path; a refused hello: GVC_ERR_SERVER with the server's code", async () => {
    const nowhere = socketPath();
    const [none] = await drive([{ call: "connect", socket: nowhere }]);
    expect(none).toMatchObject({ rc: GVC.NO_SERVER, code: "" });
    expect(none!.error).toBe(`gvc_connect: no gguf-vram server listens at ${nowhere} (No such file or directory); start one with \`gguf-vram serve\``);
    await withStandIn(async (standIn) => {
      standIn.answer = ({ request }) => ({ json: StandInServer.failure(request.id, "SHUTTING_DOWN", "the server is stopping", "connect again later") });
      const [refused] = await drive([{ call: "connect", socket: standIn.pumped.path }]);
      expect(refused).toMatchObject({ rc: GVC.SERVER, code: "SHUTTING_DOWN", error: "the server is stopping (connect again later)" });
      standIn.answer = ({ request }) => ({ json: StandInServer.ok(request.id, { op: "hello", server: "future", pid: 1, protocol: 2 }) });
      const [future] = await drive([{ call: "connect", socket: standIn.pumped.path }]);
      expect(future!.rc).toBe(GVC.PROTOCOL);
      expect(future!.error).toStartWith(`gvc_connect: the server at ${standIn.pumped.path} does not speak protocol 1 (its hello says {"v":1,"id":1,"ok":true`);
    });
  });

  test("gvc_default_socket: GGUF_VRAM_SOCKET, else $XDG_RUNTIME_DIR/gguf-vram/serve.sock, else /tmp/gguf-vram-<uid>/serve.sock; a buffer too small is refused", async () => {
    const results = await drive([
      { call: "default_socket", env: { GGUF_VRAM_SOCKET: "/srv/models.sock", XDG_RUNTIME_DIR: "/run/user/7" } },
      { call: "default_socket", env: { GGUF_VRAM_SOCKET: null, XDG_RUNTIME_DIR: "/run/user/7" } },
      { call: "default_socket", env: { XDG_RUNTIME_DIR: "relative/dir" } },
      { call: "default_socket", env: { XDG_RUNTIME_DIR: null }, bytes: 8 },
    ]);
    expect(results.map((r) => [r.rc, r.path])).toEqual([
      [GVC.OK, "/srv/models.sock"],
      [GVC.OK, "/run/user/7/gguf-vram/serve.sock"],
      [GVC.OK, `/tmp/gguf-vram-${process.getuid!()}/serve.sock`],
      [GVC.INVALID_ARGUMENT, ""],
    ]);
  });
});

// ─── requests ─────────────────────────────────────────────────────────────────

describe("requests", () => {
  test("gvc_load: the path made absolute from the program's folder, the device and verify sent; events before the reply skipped; the model id returned", async () => {
    await withStandIn(async (standIn) => {
      const folder = tempDir("gguf-vram-client-cwd-");
      mkdirSync(join(folder, "models"));
      writeFileSync(join(folder, "models", "m.gguf"), "GGUF");
      standIn.answer = ({ request, conn }) => {
        if (request.op === "load") standIn.sendLoadEvents(conn, request.id);
        return undefined;
      };
      const results = await drive([
        { call: "connect", socket: standIn.pumped.path, cwd: folder },
        { call: "load", path: "models/m.gguf", device: 1, verify: 1 },
        { call: "load", path: "missing/x.gguf" },
        { call: "load", path: "models/m.gguf", id_bytes: 2 },
      ]);
      expect(results.map((r) => [r.rc, r.id])).toEqual([
        [GVC.OK, undefined],
        [GVC.OK, "m1"],
        [GVC.OK, "m1"],
        [GVC.INVALID_ARGUMENT, ""],
      ]);
      expect(results[3]!.error).toBe("gvc_load: the model m1 is loaded, but its id needs 3 bytes and id_out has 2");
      const loads = standIn.requests("load");
      expect(loads[0]).toEqual({ v: 1, id: 2, op: "load", path: join(folder, "models", "m.gguf"), placement: { device: 1 }, verify: true });
      expect(loads[1]).toEqual({ v: 1, id: 3, op: "load", path: join(folder, "missing", "x.gguf") }); // no such file: the server says so
    });
  });

  test("gvc_request adds v and id and returns the reply; a refusal is GVC_ERR_SERVER with the server's code, message and hint, the reply still returned", async () => {
    await withStandIn(async (standIn) => {
      standIn.answer = ({ request }) =>
        request.op === "unload" ? { json: StandInServer.failure(request.id, "HELD", "model m1 is held by 2 clients", "detach them first") } : undefined;
      const results = await drive([
        { call: "connect", socket: standIn.pumped.path },
        { call: "request", json: ' {"op":"list"} ' },
        { call: "request", json: '{"op":"unload","model":"m1"}' },
        { call: "request", json: "[1]" },
      ]);
      expect(results[1]!.rc).toBe(GVC.OK);
      expect(JSON.parse(results[1]!.reply as string)).toMatchObject({ v: 1, id: 2, ok: true, op: "list", models: [{ id: "m1" }] });
      expect(results[2]).toMatchObject({ rc: GVC.SERVER, code: "HELD", error: "model m1 is held by 2 clients (detach them first)" });
      expect(JSON.parse(results[2]!.reply as string)).toMatchObject({ id: 3, ok: false, error: { code: "HELD" } });
      expect(results[3]).toMatchObject({ rc: GVC.INVALID_ARGUMENT, reply: null });
      expect(standIn.requests("unload")).toEqual([{ v: 1, id: 3, op: "unload", model: "m1" }]);
    });
  });

  test("the server closing the connection mid-request: GVC_ERR_DISCONNECTED, and every later call says so", async () => {
    await withStandIn(async (standIn) => {
      standIn.answer = ({ request }) => (request.op === "list" ? "disconnect" : undefined);
      const results = await drive([
        { call: "connect", socket: standIn.pumped.path },
        { call: "request", json: '{"op":"list"}' },
        { call: "load", path: "/m.gguf" },
      ]);
      expect(results[1]).toMatchObject({ rc: GVC.DISCONNECTED, error: "gvc_request: the server closed the connection (it stopped, or was killed)" });
      expect(results[2]).toMatchObject({ rc: GVC.DISCONNECTED, error: results[1]!.error });
      expect(standIn.requests("load")).toEqual([]);
    });
  });

  test("a server process killed with SIGKILL in the middle of a request: GVC_ERR_DISCONNECTED", async () => {
    const path = socketPath();
    const server = Bun.spawn([process.execPath, new URL("./support/ipc-child.ts", import.meta.url).pathname, path, "serve"], { stdout: "pipe" });
    const reader = server.stdout.getReader();
    let out = "";
    const readUntil = async (text: string) => {
      while (!out.includes(text)) out += new TextDecoder().decode((await reader.read()).value ?? new Uint8Array());
    };
    await readUntil("listening");
    const driving = drive([{ call: "connect", socket: path }, { call: "request", json: '{"op":"list"}' }]);
    await readUntil("request list"); // it has the request and will never answer
    server.kill("SIGKILL");
    const [connect, request] = await driving;
    expect(connect!.rc).toBe(GVC.OK);
    expect(request).toMatchObject({ rc: GVC.DISCONNECTED });
  });
});

// ─── attaching ────────────────────────────────────────────────────────────────

/** What a mapping of the stand-in's fake descriptors ends in: no device here; a GPU refuses a descriptor of /dev/null. */
const MAPPING_FAILS = GVC.NO_DEVICE;

describe("attaching", () => {
  test("gvc_attach up to the mapping: a model id sent as is and a path made absolute, the mapping's failure reported, the detach sent, no descriptor kept", async () => {
    await withStandIn(async (standIn) => {
      const folder = tempDir("gguf-vram-client-cwd-");
      // the third reply lists its files as bare paths (read too), the fourth a file without a path (refused)
      const files = [undefined, undefined, ["/models/stand-in.gguf"], [{ fileSize: 1, mtimeMs: 0 }]];
      let attaches = 0;
      standIn.answer = ({ request }) => {
        if (request.op !== "attach") return undefined;
        const reply = standIn.attachReply(request.id) as { json: { model: { files: unknown } } };
        const listed = files[attaches++];
        if (listed) reply.json.model.files = listed;
        return reply as ReturnType<StandInServer["attachReply"]>;
      };
      const results = await drive([
        { call: "connect", socket: standIn.pumped.path, cwd: folder },
        { call: "descriptors" },
        { call: "attach", model: "m1" },
        { call: "attach", model: "models/x.gguf" },
        { call: "attach", model: "m1" },
        { call: "attach", model: "m1" },
        { call: "descriptors" },
      ]);
      expect(results.slice(2).map((r) => [r.rc, r.attached])).toEqual([
        [MAPPING_FAILS, false],
        [MAPPING_FAILS, false],
        [MAPPING_FAILS, false],
        [GVC.PROTOCOL, false],
        [0, undefined],
      ]);
      expect(results[2]!.error).toStartWith("gvc_attach: this process sees no CUDA device: ");
      expect(results[5]!.error).toBe("gvc_attach: file 0 of the server's reply has no path");
      expect(results[6]!.open).toBe(results[1]!.open);
      expect(standIn.requests("attach").map((r) => r.model)).toEqual(["m1", join(folder, "models", "x.gguf"), "m1", "m1"]);
      expect(standIn.requests("detach")).toEqual([
        { v: 1, id: 3, op: "detach", attachment: "a1" },
        { v: 1, id: 5, op: "detach", attachment: "a2" },
        { v: 1, id: 7, op: "detach", attachment: "a3" },
        { v: 1, id: 9, op: "detach", attachment: "a4" },
      ]);
    });
  });

  test("malformed tensor tables are refused before anything is mapped (GVC_ERR_PROTOCOL saying what), detached again, no descriptor kept", async () => {
    const valid = () => encodeTensorTable(STAND_IN_PARTS, STAND_IN_TENSORS);
    const twoParts = [...STAND_IN_PARTS, { device: 1, allocBytes: 4 << 20, bytes: 3 << 20 }];
    const edit = (change: (view: DataView, table: Uint8Array) => void, table = valid()) => {
      change(new DataView(table.buffer), table);
      return table;
    };
    const T = 40; // the first tensor's record
    const cases: { name: string; table: Uint8Array; says: string; parts?: number }[] = [
      { name: "no magic", table: edit((v) => v.setUint32(0, 0, true)), says: 'no "GVTT" version 1 header' },
      { name: "version 2", table: edit((v) => v.setUint32(4, 2, true)), says: 'no "GVTT" version 1 header' },
      { name: "shorter than its header", table: valid().subarray(0, 12), says: 'no "GVTT" version 1 header' },
      { name: "no parts", table: edit((v) => v.setUint32(8, 0, true)), says: "a model of 0 parts or more than 64" },
      { name: "65 parts", table: edit((v) => v.setUint32(8, 65, true)), says: "a model of 0 parts or more than 64" },
      { name: "more parts than bytes", table: edit((v) => v.setUint32(8, 14, true)), says: "more parts than the table holds" },
      { name: "2^31 tensors", table: edit((v) => v.setUint32(12, 2 ** 31, true)), says: "more tensors than the table holds" },
      { name: "a device of -1", table: edit((v) => v.setInt32(16, -1, true)), says: "a part's device is not 0..1023" },
      { name: "a descriptor never sent", table: edit((v) => v.setUint32(20, 1, true)), says: "a part names a descriptor the reply did not carry" },
      { name: "a part of 0 bytes", table: edit((v) => v.setBigUint64(32, 0n, true)), says: "a part's size is 0 or larger than its allocation" },
      { name: "a part larger than its allocation", table: edit((v) => v.setBigUint64(24, 1n, true)), says: "a part's size is 0 or larger than its allocation" },
      { name: "two parts on one descriptor", table: edit((v) => v.setUint32(16 + 24 + 4, 0, true), encodeTensorTable(twoParts, STAND_IN_TENSORS)), says: "two parts name the same descriptor", parts: 2 },
      { name: "a tensor's part that does not exist", table: edit((v) => v.setUint32(T, 1, true)), says: "a tensor's part does not exist" },
      { name: "0 dimensions", table: edit((v) => v.setUint32(T + 8, 0, true)), says: "a tensor has not 1 to 4 dimensions" },
      { name: "5 dimensions", table: edit((v) => v.setUint32(T + 8, 5, true)), says: "a tensor has not 1 to 4 dimensions" },
      { name: "an empty name", table: edit((v) => v.setUint32(T + 12, 0, true)), says: "a tensor's name is empty or runs past the table" },
      { name: "a name past the end", table: edit((v) => v.setUint32(T + 12, 1000, true)), says: "a tensor's name is empty or runs past the table" },
      { name: "a NUL in a name", table: edit((_, t) => (t[T + 80 + 3] = 0)), says: "a tensor's name holds a NUL byte" },
      { name: "a tensor past its part's end", table: edit((v) => v.setBigUint64(T + 48, 3n << 20n, true)), says: "a tensor lies outside its part" },
      { name: "an offset that overflows", table: edit((v) => v.setBigUint64(T + 48, 2n ** 64n - 1n, true)), says: "a tensor lies outside its part" },
      { name: "a dimension over 2^63 - 1", table: edit((v) => v.setBigUint64(T + 16, 2n ** 63n, true)), says: "a tensor's dimension is out of range" },
      { name: "cut inside the last tensor", table: valid().subarray(0, 300), says: "a tensor runs past the end of the table" },
      { name: "bytes after the last tensor", table: new Uint8Array([...valid(), 0, 0, 0, 0, 0, 0, 0, 0]), says: "bytes follow the last tensor" },
      { name: "a shard the model does not have", table: edit((v) => v.setUint32(T + 72, 1, true)), says: "gvc_attach: tensor token_embd.weight is in shard 1 of a model of 1 files" },
    ];
    await withStandIn(async (standIn) => {
      let next = 0;
      standIn.answer = ({ request }) => {
        if (request.op !== "attach") return undefined;
        const bad = cases[next++]!;
        return standIn.attachReply(request.id, bad.table, bad.parts ?? 1);
      };
      const results = await drive([
        { call: "connect", socket: standIn.pumped.path },
        { call: "descriptors" },
        ...cases.map(() => ({ call: "attach", model: "m1" })),
        { call: "descriptors" },
      ]);
      const outcomes = cases.map((bad, i) => [bad.name, results[2 + i]!.rc, results[2 + i]!.error.includes(bad.says) ? "says so" : results[2 + i]!.error]);
      expect(outcomes).toEqual(cases.map((bad) => [bad.name, GVC.PROTOCOL, "says so"]));
      expect(results.at(-1)!.open).toBe(results[1]!.open);
      expect(standIn.requests("detach").map((r) => r.attachment)).toEqual(cases.map((_, i) => `a${i + 1}`));
    });
  });

  test("three hundred randomly damaged tensor tables: each refused or its mapping failed, never a crash, no descriptor kept", async () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const damaged = () => {
      const table = encodeTensorTable(STAND_IN_PARTS, STAND_IN_TENSORS);
      for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) table[Math.floor(random() * table.length)] = Math.floor(random() * 256);
      const cut = random();
      return cut < 0.1 ? table.subarray(0, Math.floor(random() * table.length)) : table;
    };
    await withStandIn(async (standIn) => {
      standIn.answer = ({ request }) => (request.op === "attach" ? standIn.attachReply(request.id, damaged()) : undefined);
      const results = await drive([{ call: "connect", socket: standIn.pumped.path }, { call: "descriptors" }, { call: "attach_many", model: "m1", times: 300 }, { call: "descriptors" }]);
      const seen = results[2]!.seen as Record<string, number>;
      expect(Object.keys(seen).map(Number).filter((rc) => rc !== GVC.PROTOCOL && rc !== MAPPING_FAILS)).toEqual([]);
      expect(Object.values(seen).reduce((a, b) => a + b, 0)).toBe(300);
      expect(seen[GVC.PROTOCOL]).toBeGreaterThan(0);
      expect(results[3]!.open).toBe(results[1]!.open);
      expect(standIn.requests("detach")).toHaveLength(300);
    });
  });
});

// ─── hostile replies ──────────────────────────────────────────────────────────

/** What a scripted server sends for a request with `id`: raw bytes, then maybe the end. */
type Scripted = (id: number) => { bytes: Uint8Array; end?: boolean };

/** A server of raw Bun sockets (no library): it greets each connection properly, then answers its requests with the script of that connection. */
function scriptedServer(path: string, scripts: Scripted[]) {
  let connections = 0;
  return Bun.listen<{ script: Scripted; buffer: Uint8Array }>({
    unix: path,
    socket: {
      open(socket) {
        socket.data = { script: scripts[connections++] ?? (() => ({ bytes: new Uint8Array(), end: true })), buffer: new Uint8Array() };
      },
      data(socket, chunk) {
        let buffer = new Uint8Array([...socket.data.buffer, ...chunk]);
        while (buffer.length >= 16) {
          const view = new DataView(buffer.buffer, buffer.byteOffset);
          const size = 16 + view.getUint32(4, true);
          if (buffer.length < size) break;
          const request = JSON.parse(new TextDecoder().decode(buffer.subarray(16, size))) as { id: number; op: string };
          buffer = buffer.slice(size);
          if (request.op === "hello") {
            socket.write(frame(JSON.stringify({ v: 1, id: request.id, ok: true, op: "hello", server: "scripted", pid: 1, protocol: 1 })));
            continue;
          }
          const { bytes, end } = socket.data.script(request.id);
          socket.write(bytes);
          if (end) socket.end();
        }
        socket.data.buffer = buffer;
      },
    },
  });
}

const reply = (json: string, end = false): Scripted => () => ({ bytes: frame(json), end });

const HOSTILE: { name: string; script: Scripted; rc: number; says: string }[] = [
  { name: "a bad magic", script: () => ({ bytes: frame("{}", { magic: 0x4f4f5053 }) }), rc: GVC.PROTOCOL, says: "the server sent a bad frame: a frame starts with 0x4f4f5053" },
  { name: "16 MiB + 1 of JSON announced", script: () => ({ bytes: frame("", { jsonBytes: (16 << 20) + 1 }) }), rc: GVC.PROTOCOL, says: "a reply of 16777217 bytes of JSON, over the limit" },
  { name: "64 MiB + 1 of binary announced", script: () => ({ bytes: frame("{}", { binBytes: (64 << 20) + 1 }) }), rc: GVC.PROTOCOL, says: "binary part of 67108865 bytes, over the limit" },
  { name: "65 descriptors announced", script: () => ({ bytes: frame("{}", { fds: 65 }) }), rc: GVC.PROTOCOL, says: "a reply with 65 descriptors, over the limit of 64" },
  { name: "a descriptor that never came", script: (id) => ({ bytes: frame(`{"v":1,"id":${id},"ok":true}`, { fds: 1 }) }), rc: GVC.PROTOCOL, says: "announces 1 descriptors but 0 came" },
  { name: "a frame cut short, then the end", script: () => ({ bytes: frame('{"cut":"short"}').subarray(0, 21), end: true }), rc: GVC.PROTOCOL, says: "closed the connection in the middle of a frame (21 bytes of it came)" },
  { name: "not JSON", script: reply("hello"), rc: GVC.PROTOCOL, says: "not a JSON object: the reply is not a JSON object at byte 0 of 5" },
  { name: "an array", script: reply("[1,2]"), rc: GVC.PROTOCOL, says: "the reply is not a JSON object" },
  { name: "nested 100 deep", script: reply(`{"a":${"[".repeat(100)}${"]".repeat(100)}}`), rc: GVC.PROTOCOL, says: "values nested too deep" },
  { name: "a string that never ends", script: reply('{"id":2,"ok":true,"x":"abc'), rc: GVC.PROTOCOL, says: "a string that never ends" },
  { name: "a bad escape", script: reply('{"id":2,"ok":true,"x":"\\q"}'), rc: GVC.PROTOCOL, says: "a bad escape in a string" },
  { name: "a bad \\u escape", script: reply('{"id":2,"ok":true,"x":"\\u12G4"}'), rc: GVC.PROTOCOL, says: "a bad \\u escape" },
  { name: "a raw control character in a string", script: reply('{"id":2,"ok":true,"x":"a\tb"}'), rc: GVC.PROTOCOL, says: "a control character inside a string" },
  { name: "a number with a leading zero", script: reply('{"id":02,"ok":true}'), rc: GVC.PROTOCOL, says: "',' or '}' was expected" },
  { name: "a word that is not JSON", script: reply('{"id":2,"ok":tru}'), rc: GVC.PROTOCOL, says: "an unknown word" },
  { name: "text after the object", script: reply('{"id":2,"ok":true} {}'), rc: GVC.PROTOCOL, says: "text follows the object" },
  { name: "no ok", script: (id) => ({ bytes: frame(`{"v":1,"id":${id}}`) }), rc: GVC.PROTOCOL, says: 'the server\'s reply has no "ok" true or false' },
  { name: "ok as a string", script: (id) => ({ bytes: frame(`{"v":1,"id":${id},"ok":"yes"}`) }), rc: GVC.PROTOCOL, says: 'no "ok" true or false' },
  { name: "a refusal without a code", script: (id) => ({ bytes: frame(`{"v":1,"id":${id},"ok":false,"error":{"message":"no"}}`) }), rc: GVC.PROTOCOL, says: "refused the request without an error code" },
  { name: "a refusal whose code is a number", script: (id) => ({ bytes: frame(`{"v":1,"id":${id},"ok":false,"error":{"code":7}}`) }), rc: GVC.PROTOCOL, says: "without an error code" },
  { name: "the end without a word", script: () => ({ bytes: new Uint8Array(), end: true }), rc: GVC.DISCONNECTED, says: "the server closed the connection (it stopped, or was killed)" },
];

describe("hostile replies", () => {
  test("every kind of bad reply is GVC_ERR_PROTOCOL (or DISCONNECTED) saying what, again on the next call; no crash, no descriptor kept", async () => {
    const path = socketPath();
    const server = scriptedServer(path, HOSTILE.map((bad) => bad.script));
    try {
      const steps = HOSTILE.flatMap(() => [{ call: "connect", socket: path }, { call: "request", json: '{"op":"list"}' }, { call: "request", json: '{"op":"list"}' }, { call: "close" }]);
      const results = await drive([{ call: "descriptors" }, ...steps, { call: "descriptors" }]);
      const outcomes = HOSTILE.map((bad, i) => {
        const [connect, first, second] = results.slice(1 + 4 * i, 4 + 4 * i);
        return [bad.name, connect!.rc, first!.rc, first!.error.includes(bad.says) ? "says so" : first!.error, second!.rc === first!.rc && second!.error === first!.error];
      });
      expect(outcomes).toEqual(HOSTILE.map((bad) => [bad.name, GVC.OK, bad.rc, "says so", true]));
      expect(results.at(-1)!.open).toBe(results[0]!.open);
    } finally {
      server.stop(true);
    }
  });

  test("replies for other ids are skipped, an id-null failure answers the request, escapes are decoded into the error", async () => {
    const path = socketPath();
    const server = scriptedServer(path, [
      (id) => ({ bytes: new Uint8Array([...frame(`{"v":1,"id":${id + 40},"ok":true}`), ...frame(`{"v":1,"id":${id},"ok":true,"x":"\\ud83d\\ude00 \\u00e9\\n"}`)]) }),
      () => ({ bytes: frame('{"v":1,"id":null,"ok":false,"error":{"code":"BAD_REQUEST","message":"line\\nbreak \\u00e9 \\"quoted\\"","hint":"h"}}'), end: true }),
    ]);
    try {
      const results = await drive([
        { call: "connect", socket: path },
        { call: "request", json: '{"op":"list"}' },
        { call: "connect", socket: path },
        { call: "request", json: '{"op":"list"}' },
      ]);
      expect(results[1]).toMatchObject({ rc: GVC.OK, reply: '{"v":1,"id":2,"ok":true,"x":"\\ud83d\\ude00 \\u00e9\\n"}' });
      expect(results[3]).toMatchObject({ rc: GVC.SERVER, code: "BAD_REQUEST", error: 'line\nbreak é "quoted" (h)' });
    } finally {
      server.stop(true);
    }
  });
});
