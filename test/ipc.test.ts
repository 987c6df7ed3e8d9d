// The resident-model socket without a GPU (cuda/wire.cu, cuda/ipc*.cu through
// src/cuda/ipc.ts): a server whose wait runs in a Worker as `serve` runs it,
// clients in this process and in others. Frames arrive whole and in order at
// awkward and large sizes, descriptors pass through, a live server's path is
// refused and a dead one's replaced, and nothing is left open afterwards.
// Bad frames and other users: ipc-bad-frames.test.ts.

import { describe, expect, test } from "bun:test";
import { existsSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Arena, closeFd, IpcClient, IpcServer, liveResources, openCuda } from "../src/cuda/index.ts";
import { gpu } from "./support/gpu.ts";
import { pattern, thrown } from "./support/ipc-frames.ts";
import { openDescriptors, PumpedServer } from "./support/ipc-server.ts";
import { tempDirs } from "./support/temp.ts";

await openCuda();
const tempDir = tempDirs();
const bun = process.execPath;
const CHILD = new URL("./support/ipc-child.ts", import.meta.url).pathname;

function socketPath(): string {
  return join(tempDir("gguf-vram-ipc-"), "serve.sock");
}

/** A server in a Worker and a client connected to it; closed after `fn`, however it ends. */
async function withConnection(fn: (pumped: PumpedServer, client: IpcClient, conn: number) => Promise<void> | void): Promise<void> {
  const pumped = new PumpedServer(socketPath());
  const client = IpcClient.connect(pumped.path);
  try {
    const connected = await pumped.nextOf("connected");
    await fn(pumped, client, connected.conn);
  } finally {
    client.close();
    await pumped.close();
  }
}

// ─── round trips ──────────────────────────────────────────────────────────────

describe("requests and replies between IpcClient and IpcServer", () => {
  test("a request arrives whole as one message with the client's pid and uid; a reply of JSON and 4097 binary bytes comes back whole", async () => {
    await withConnection(async (pumped, client, conn) => {
      client.request('{"v":1,"id":7,"op":"list"}');
      const message = await pumped.nextOf("message", conn);
      expect(message).toMatchObject({ text: '{"v":1,"id":7,"op":"list"}', pid: process.pid, uid: process.getuid!() });
      const bin = pattern(4097, 1);
      pumped.server.send(conn, '{"v":1,"id":7,"ok":true}', bin);
      const reply = client.poll(10_000)!;
      expect(reply.json).toBe('{"v":1,"id":7,"ok":true}');
      expect(reply.bin).toEqual(bin);
      expect(reply.fds).toEqual([]);
      expect(client.poll(0)).toBeNull();
    });
  });

  test("a reply of 1 MiB of JSON and 5 MiB + 3 bytes of binary arrives whole", async () => {
    await withConnection(async (pumped, client, conn) => {
      const json = JSON.stringify({ v: 1, id: 1, ok: true, pad: "x".repeat((1 << 20) - 40) });
      const bin = pattern((5 << 20) + 3, 2);
      pumped.server.send(conn, json, bin);
      const reply = client.poll(30_000)!;
      expect(reply.json).toBe(json);
      expect(reply.bin.length).toBe(bin.length);
      expect(Buffer.compare(reply.bin, bin)).toBe(0);
    });
  });

  test("a thousand replies in a row arrive in order, and three hundred requests in a row reach the server in order", async () => {
    await withConnection(async (pumped, client, conn) => {
      for (let i = 0; i < 1000; i++) pumped.server.send(conn, JSON.stringify({ id: i }), i % 7 === 0 ? pattern(i, i) : undefined);
      for (let i = 0; i < 1000; i++) {
        const reply = client.poll(10_000)!;
        expect(JSON.parse(reply.json).id).toBe(i);
        expect(reply.bin.length).toBe(i % 7 === 0 ? i : 0);
      }
      for (let i = 0; i < 300; i++) client.request(JSON.stringify({ id: i, pad: "y".repeat(i) }));
      for (let i = 0; i < 300; i++) expect(JSON.parse((await pumped.nextOf("message", conn)).text).id).toBe(i);
    });
  });

  test("replies in another order than their requests: each arrives as sent, with its own id", async () => {
    await withConnection(async (pumped, client, conn) => {
      for (const id of [1, 2, 3]) client.request(JSON.stringify({ v: 1, id, op: "list" }));
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(JSON.parse((await pumped.nextOf("message", conn)).text).id);
      expect(ids).toEqual([1, 2, 3]);
      for (const id of [3, 1, 2]) pumped.server.send(conn, JSON.stringify({ v: 1, id, ok: true }));
      const order = [1, 2, 3].map(() => JSON.parse(client.poll(10_000)!.json).id);
      expect(order).toEqual([3, 1, 2]);
    });
  });

  test("a reply queued just before stop() still reaches the client: close() sends what it can", async () => {
    const pumped = new PumpedServer(socketPath());
    const client = IpcClient.connect(pumped.path);
    const { conn } = await pumped.nextOf("connected");
    pumped.server.send(conn, '{"last":true}');
    await pumped.close();
    expect(client.poll(10_000)?.json).toBe('{"last":true}');
    client.close();
  });
});

// ─── descriptors ──────────────────────────────────────────────────────────────

describe("descriptors", () => {
  test("a regular file's descriptor sent with gv_ipc_send reads the same file on the client's side", async () => {
    const file = join(tempDir("gguf-vram-ipc-fd-"), "bytes");
    writeFileSync(file, "resident bytes");
    await withConnection(async (pumped, client, conn) => {
      pumped.server.send(conn, '{"with":"a descriptor"}', undefined, [openSync(file, "r")]);
      const reply = client.poll(10_000)!;
      expect(reply.fds).toHaveLength(1);
      const read = Buffer.alloc(14);
      expect(readSync(reply.fds[0]!, read, 0, 14, 0)).toBe(14);
      expect(read.toString()).toBe("resident bytes");
      closeFd(reply.fds[0]!);
    });
  });

  test("64 descriptors in one frame all arrive and read; 65 are refused, and the server closes them", async () => {
    const file = join(tempDir("gguf-vram-ipc-fd-"), "bytes");
    writeFileSync(file, "0123456789");
    await withConnection(async (pumped, client, conn) => {
      pumped.server.send(conn, '{"n":64}', undefined, Array.from({ length: 64 }, () => openSync(file, "r")));
      const reply = client.poll(10_000)!;
      expect(reply.fds).toHaveLength(64);
      for (const fd of reply.fds) {
        const read = Buffer.alloc(10);
        readSync(fd, read, 0, 10, 0);
        expect(read.toString()).toBe("0123456789");
        closeFd(fd);
      }
      const tooMany = Array.from({ length: 65 }, () => openSync(file, "r"));
      const error = thrown(() => pumped.server.send(conn, '{"n":65}', undefined, tooMany));
      expect(error.code).toBe("INVALID_ARGUMENT");
      expect(error.message).toContain("65 descriptors, over the limit of 64");
      expect(openDescriptors(file)).toBe(0);
    });
  });

  test("descriptors a client never takes are closed with it; a send to a closed connection is DISCONNECTED and closes its descriptors", async () => {
    const file = join(tempDir("gguf-vram-ipc-fd-"), "bytes");
    writeFileSync(file, "x");
    const pumped = new PumpedServer(socketPath());
    try {
      const client = IpcClient.connect(pumped.path);
      const { conn } = await pumped.nextOf("connected");
      // the second frame's descriptors reach the client's buffer (or stay in the socket) but are never taken
      pumped.server.send(conn, '{"first":true}');
      pumped.server.send(conn, '{"second":true}', undefined, [openSync(file, "r"), openSync(file, "r")]);
      expect(client.poll(10_000)?.json).toBe('{"first":true}');
      client.close();
      await pumped.nextOf("closed", conn);
      const error = thrown(() => pumped.server.send(conn, "{}", undefined, [openSync(file, "r")]));
      expect(error.code).toBe("DISCONNECTED");
      expect(error.message).toBe(`gv_ipc_send: connection ${conn} is closed`);
      expect(openDescriptors(file)).toBe(0);
    } finally {
      await pumped.close();
    }
  });
});

// ─── the socket file and its lock ─────────────────────────────────────────────

/** Starts ipc-child.ts serving at `path`; resolves once it listens. */
async function childServer(path: string) {
  const child = Bun.spawn([bun, CHILD, path, "serve"], { stdout: "pipe", stderr: "pipe" });
  const reader = child.stdout.getReader();
  let out = "";
  while (!out.includes("listening")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the child server did not start: ${out} ${await new Response(child.stderr).text()}`);
    out += new TextDecoder().decode(value);
  }
  return { child, lines: async () => out + new TextDecoder().decode((await reader.read()).value ?? new Uint8Array()) };
}

describe("the socket file and its lock", () => {
  test("a second listen on a live server's path is IN_USE, naming its pid, from this process and from another; the first serves on", async () => {
    await withConnection(async (pumped, client, conn) => {
      const here = thrown(() => IpcServer.listen(pumped.path));
      expect(here.code).toBe("IN_USE");
      expect(here.message).toBe(`gv_ipc_listen: another server (pid ${process.pid}) listens at ${pumped.path} (it holds ${pumped.path}.lock)`);
      expect(here.hint).toContain("GGUF_VRAM_SOCKET");
      const other = Bun.spawnSync([bun, CHILD, pumped.path, "try"]);
      expect(JSON.parse(other.stdout.toString())).toEqual({ code: "IN_USE", message: here.message });
      client.request('{"still":"served"}');
      expect((await pumped.nextOf("message", conn)).text).toBe('{"still":"served"}');
    });
  });

  test("a server killed with SIGKILL leaves its socket file, which refuses connections; the next listen replaces it and serves", async () => {
    const path = socketPath();
    const { child } = await childServer(path);
    child.kill("SIGKILL");
    await child.exited;
    expect(existsSync(path)).toBe(true);
    expect(thrown(() => IpcClient.connect(path)).code).toBe("NO_SERVER");
    const pumped = new PumpedServer(path);
    try {
      const client = IpcClient.connect(path);
      client.request('{"after":"the dead one"}');
      expect((await pumped.nextOf("message")).text).toBe('{"after":"the dead one"}');
      client.close();
    } finally {
      await pumped.close();
    }
    expect(existsSync(path)).toBe(false); // close() removes the file it made
    expect(readFileSync(`${path}.lock`, "utf8")).toBe(`${process.pid}\n`); // the lock file stays, released
  });

  test("stop(): new clients get NO_SERVER while the file is there; close() removes it and a new server can listen at once", async () => {
    const pumped = new PumpedServer(socketPath());
    pumped.server.stop();
    await pumped.nextOf("stopped");
    expect(existsSync(pumped.path)).toBe(true);
    const refused = thrown(() => IpcClient.connect(pumped.path));
    expect(refused.code).toBe("NO_SERVER");
    expect(refused.message).toBe(`gv_ipc_connect: no server listens at ${pumped.path}: Connection refused`);
    await pumped.close();
    expect(existsSync(pumped.path)).toBe(false);
    const again = new PumpedServer(pumped.path);
    await again.close();
  });

  test("a path that is not a socket is left alone (SOCKET); one too long for a Unix socket is SOCKET (ENAMETOOLONG); nothing there is NO_SERVER", () => {
    const path = socketPath();
    writeFileSync(path, "not a socket");
    const inTheWay = thrown(() => IpcServer.listen(path));
    expect([inTheWay.code, inTheWay.message]).toEqual(["SOCKET", `gv_ipc_listen: ${path} is in the way and is not a socket: File exists`]);
    expect(readFileSync(path, "utf8")).toBe("not a socket");
    const long = `/tmp/${"x".repeat(120)}.sock`;
    const tooLong = thrown(() => IpcServer.listen(long));
    expect(tooLong.code).toBe("SOCKET");
    expect(tooLong.message).toContain("a Unix socket path holds at most 107: File name too long");
    expect(tooLong.osError).toBe(36); // ENAMETOOLONG
    const nothing = thrown(() => IpcClient.connect(join(tempDir("gguf-vram-ipc-"), "none.sock")));
    expect(nothing.code).toBe("NO_SERVER");
    expect(nothing.hint).toContain("bun run serve");
  });
});

// ─── leaks and limits ─────────────────────────────────────────────────────────

describe("nothing left behind", () => {
  test("64 connections opened and closed: the counts go back to 0 and so do this process's open sockets", async () => {
    const pumped = new PumpedServer(socketPath());
    try {
      const before = openDescriptors("socket:");
      const clients = Array.from({ length: 64 }, () => IpcClient.connect(pumped.path));
      const conns = new Set<number>();
      for (let i = 0; i < 64; i++) conns.add((await pumped.nextOf("connected")).conn);
      expect(conns.size).toBe(64);
      expect(pumped.server.counts()).toEqual({ connections: 64, queued: 0 });
      for (const client of clients) client.close();
      for (let i = 0; i < 64; i++) conns.delete((await pumped.nextOf("closed")).conn);
      expect(conns.size).toBe(0);
      expect(pumped.server.counts()).toEqual({ connections: 0, queued: 0 });
      expect(openDescriptors("socket:")).toBe(before);
      const next = IpcClient.connect(pumped.path);
      expect((await pumped.nextOf("connected")).conn).toBe(65); // ids are never reused
      next.close();
    } finally {
      await pumped.close();
    }
  });

  test("disconnect(): a client that reads gets all that was queued, then the end; one that reads nothing for 2 s is closed anyway", async () => {
    const pumped = new PumpedServer(socketPath());
    try {
      const big = pattern(8 << 20, 3); // more than a socket buffer holds
      const reader = IpcClient.connect(pumped.path);
      const readerConn = (await pumped.nextOf("connected")).conn;
      pumped.server.send(readerConn, '{"big":true}', big);
      pumped.server.disconnect(readerConn);
      const whole = reader.poll(10_000)!;
      expect(Buffer.compare(whole.bin, big)).toBe(0);
      expect(thrown(() => reader.poll(10_000)).code).toBe("DISCONNECTED");
      expect((await pumped.nextOf("closed", readerConn)).text).toBe("disconnected by the server");
      reader.close();

      const sleeper = IpcClient.connect(pumped.path);
      const sleeperConn = (await pumped.nextOf("connected")).conn;
      pumped.server.send(sleeperConn, '{"big":true}', big);
      pumped.server.disconnect(sleeperConn);
      expect(thrown(() => pumped.server.send(sleeperConn, "{}")).code).toBe("DISCONNECTED"); // draining: it takes nothing more
      expect((await pumped.nextOf("closed", sleeperConn, 20_000)).text).toBe("disconnected by the server");
      expect(pumped.server.counts()).toEqual({ connections: 0, queued: 0 });
      expect(thrown(() => sleeper.poll(10_000)).message).toContain("in the middle of a frame"); // what the socket held, then the end
      sleeper.close();
    } finally {
      await pumped.close();
    }
  }, 30_000);

  test("an event larger than the wait's buffer: PROTOCOL, that event dropped, the next ones still reported", () => {
    const path = socketPath();
    const server = IpcServer.listen(path);
    const client = IpcClient.connect(path);
    try {
      const small = new Uint8Array(64);
      expect(IpcServer.wait(server.handle, 0, small).map((e) => e.type)).toEqual(["connected"]); // a timeout of 0 still takes what is there
      const large = JSON.stringify({ pad: "y".repeat(100) });
      client.request(large);
      const error = thrown(() => IpcServer.wait(server.handle, 10_000, small));
      expect(error.code).toBe("PROTOCOL");
      expect(error.message).toBe(`gv_ipc_wait: an event of ${24 + ((large.length + 7) & ~7)} bytes does not fit the buffer of 64 bytes; it was dropped`);
      client.request("{}");
      expect(IpcServer.wait(server.handle, 10_000, small)).toMatchObject([{ type: "message", text: "{}" }]);
    } finally {
      client.close();
      server.close();
    }
  });
});

// ─── importing without a GPU ──────────────────────────────────────────────────

describe("another process's allocation", () => {
  test.skipIf(gpu.available)("Arena.import on a machine without a GPU: NO_DEVICE, nothing counted; closeFd of a closed descriptor: SOCKET (EBADF)", () => {
    const file = join(tempDir("gguf-vram-ipc-fd-"), "x");
    writeFileSync(file, "x");
    const fd = openSync(file, "r");
    const before = liveResources();
    const error = thrown(() => Arena.import(fd, 2 << 20, 1 << 20, 0));
    expect(error.code).toBe("NO_DEVICE");
    expect(error.message).toStartWith("gv_arena_import: cudaGetDeviceCount failed");
    expect(liveResources()).toEqual(before);
    expect(thrown(() => Arena.import(fd, 1 << 20, 2 << 20, 0)).code).toBe("INVALID_ARGUMENT");
    closeFd(fd); // the descriptor stayed the caller's
    const closed = thrown(() => closeFd(fd));
    expect([closed.code, closed.osError, closed.message]).toEqual(["SOCKET", 9, `gv_close_fd(${fd}): Bad file descriptor`]);
  });
});
