// Bad frames on the resident-model socket, both ways, without a GPU: a server
// answers each bad request with a BAD_REQUEST failure (id null), closes that
// connection and serves the others; another user's connection is refused the
// same way; IpcClient turns each bad reply into PROTOCOL (or DISCONNECTED) and
// says it again on every later call.

import { describe, expect, test } from "bun:test";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CudaError, IpcClient, openCuda } from "../src/cuda/index.ts";
import { frame, rawClient, thrown } from "./support/ipc-frames.ts";
import { PumpedServer } from "./support/ipc-server.ts";
import { tempDirs } from "./support/temp.ts";

await openCuda();
const tempDir = tempDirs();
const RAW_CLIENT = new URL("./support/raw_client.py", import.meta.url).pathname;

function socketPath(): string {
  return join(tempDir("gguf-vram-ipc-"), "serve.sock");
}

// ─── bad frames and other users ───────────────────────────────────────────────

const BAD_FRAMES: { name: string; bytes: Uint8Array; says: string; fdFile?: boolean; before?: string }[] = [
  { name: "a request over 64 KiB", bytes: frame("", { jsonBytes: 65537 }), says: "a request of 65537 bytes of JSON, over the limit of 65536" },
  { name: "a bad magic", bytes: frame("{}", { magic: 0x50545448 }), says: 'a frame starts with 0x50545448, not the magic 0x31525647 ("GVR1")' },
  { name: "a binary part", bytes: frame("{}", {}, new Uint8Array(4)), says: "a request with a binary part of 4 bytes (a client's frame is JSON only)" },
  { name: "descriptors announced", bytes: frame("{}", { fds: 1 }), says: "a request with 1 descriptors (a client's frame is JSON only)" },
  { name: "descriptors attached (SCM_RIGHTS)", bytes: frame("{}"), says: "a request came with 1 descriptors (a client's frame is JSON only)", fdFile: true },
  { name: "a good request, then a bad magic", bytes: new Uint8Array([...frame('{"good":1}'), ...frame("{}", { magic: 0 })]), says: "not the magic", before: '{"good":1}' },
];

describe("bad frames from a client", () => {
  test.each(BAD_FRAMES)("$name: a BAD_REQUEST failure (id null) saying what, the connection closed, the server serving others", async (bad) => {
    const pumped = new PumpedServer(socketPath());
    try {
      const fdFile = join(tempDir("gguf-vram-ipc-fd-"), "x");
      writeFileSync(fdFile, "x");
      const raw = await rawClient(pumped.path, bad.bytes, bad.fdFile ? { fdFile } : {});
      expect(raw.closed).toBe(true);
      expect(raw.frames).toHaveLength(1);
      const failure = JSON.parse(raw.frames[0]!);
      expect(failure).toMatchObject({ v: 1, id: null, ok: false, error: { code: "BAD_REQUEST" } });
      expect(failure.error.message).toContain(bad.says);
      expect(failure.error.hint).toContain("64 KiB");
      const { conn } = await pumped.nextOf("connected");
      if (bad.before) expect((await pumped.nextOf("message", conn)).text).toBe(bad.before);
      expect((await pumped.nextOf("protocol-error", conn)).text).toContain(bad.says);
      expect((await pumped.nextOf("closed", conn)).text).toBe("closed after a bad frame");
      expect(pumped.pending.filter((e) => e.conn === conn)).toEqual([]);

      const good = IpcClient.connect(pumped.path);
      good.request('{"next":"client"}');
      expect((await pumped.nextOf("message")).text).toBe('{"next":"client"}');
      good.close();
      await pumped.nextOf("closed");
      expect(pumped.server.counts()).toEqual({ connections: 0, queued: 0 });
    } finally {
      await pumped.close();
    }
  });

  test("a client that closes in the middle of a frame: closed, saying so, no failure sent", async () => {
    const pumped = new PumpedServer(socketPath());
    try {
      const raw = await rawClient(pumped.path, frame('{"cut":"short"}').subarray(0, 20), { closeAfterSending: true });
      expect(raw.frames).toEqual([]);
      const { conn } = await pumped.nextOf("connected");
      expect((await pumped.nextOf("closed", conn)).text).toBe("the client closed the connection in the middle of a frame");
    } finally {
      await pumped.close();
    }
  });

  test.skipIf(process.getuid?.() !== 0)("another user's connection (nobody, run by root): PEER_REFUSED, closed, reported as refused with its uid", async () => {
    const pumped = new PumpedServer(socketPath());
    try {
      // Let nobody reach the socket at all: the folder's 0700 and the socket's 0600 are the first walls; this tests the last.
      chmodSync(join(pumped.path, ".."), 0o755);
      chmodSync(pumped.path, 0o666);
      const raw = await rawClient(pumped.path, frame('{"v":1,"id":1,"op":"list"}'), { asUser: 65534, script: readFileSync(RAW_CLIENT, "utf8") });
      expect(raw).toMatchObject({ connected: true, closed: true, uid: 65534 });
      expect(raw.frames).toHaveLength(1);
      const failure = JSON.parse(raw.frames[0]!);
      expect(failure).toMatchObject({ v: 1, id: null, ok: false, error: { code: "PEER_REFUSED" } });
      expect(failure.error.message).toMatch(/^this server runs as uid 0 and serves only that user; the connection of uid 65534 \(pid \d+\) is refused$/);
      expect(failure.error.hint).toContain("connect as the user who started the server");
      const refused = await pumped.nextOf("refused");
      expect(refused).toMatchObject({ uid: 65534, text: failure.error.message });
      await Bun.sleep(50);
      expect(pumped.pending.filter((e) => e.conn === refused.conn)).toEqual([]); // neither connected nor closed, nor its request
      expect(pumped.server.counts()).toEqual({ connections: 0, queued: 0 });
    } finally {
      await pumped.close();
    }
  });
});

// ─── a client's side of bad frames ────────────────────────────────────────────

/** A server that writes `bytes` to each connection (then closes it, with `end`): a raw Bun socket, no library. */
function hostileServer(path: string, bytes: Uint8Array, end: boolean) {
  let written!: () => void;
  const done = new Promise<void>((resolve) => (written = resolve));
  const listener = Bun.listen({
    unix: path,
    socket: {
      open(socket) {
        socket.write(bytes);
        if (end) socket.end();
        written();
      },
      data() {},
    },
  });
  return { done, stop: () => listener.stop(true) };
}

const BAD_REPLIES: { name: string; bytes: Uint8Array; end: boolean; code: CudaError["code"]; says: string }[] = [
  { name: "a bad magic", bytes: frame("{}", { magic: 0x4e4f5045 }), end: false, code: "PROTOCOL", says: "gv_ipc_poll: a frame starts with 0x4e4f5045, not the magic" },
  { name: "16 MiB + 1 of JSON announced", bytes: frame("", { jsonBytes: (16 << 20) + 1 }), end: false, code: "PROTOCOL", says: "a reply of 16777217 bytes of JSON, over the limit of 16777216" },
  { name: "64 MiB + 1 of binary announced", bytes: frame("{}", { binBytes: (64 << 20) + 1 }), end: false, code: "PROTOCOL", says: "a reply with a binary part of 67108865 bytes, over the limit of 67108864" },
  { name: "65 descriptors announced", bytes: frame("{}", { fds: 65 }), end: false, code: "PROTOCOL", says: "a reply with 65 descriptors, over the limit of 64" },
  { name: "a descriptor announced that never came", bytes: frame("{}", { fds: 1 }), end: false, code: "PROTOCOL", says: "a reply announces 1 descriptors but 0 came with it" },
  { name: "a frame cut short, then the end", bytes: frame('{"cut":"short"}').subarray(0, 20), end: true, code: "PROTOCOL", says: "the server closed the connection in the middle of a frame (20 bytes of it came)" },
  { name: "the end without a word", bytes: new Uint8Array(), end: true, code: "DISCONNECTED", says: "gv_ipc_poll: the other side closed the connection" },
];

describe("bad frames from a server, as IpcClient reads them", () => {
  test.each(BAD_REPLIES)("$name: $code, and every later call says it again", async (bad) => {
    const path = socketPath();
    const server = hostileServer(path, bad.bytes, bad.end);
    const client = IpcClient.connect(path);
    try {
      await server.done;
      await Bun.sleep(20); // the bytes leave Bun's socket
      const error = thrown(() => client.poll(10_000));
      expect(error.code).toBe(bad.code);
      expect(error.message).toContain(bad.says);
      expect(thrown(() => client.poll(0)).message).toBe(error.message);
      expect(thrown(() => client.request("{}")).code).toBe(bad.code);
    } finally {
      client.close();
      server.stop();
    }
  });
});
