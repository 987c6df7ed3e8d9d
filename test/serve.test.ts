// The resident-model server's protocol, without a GPU: a server process and
// clients that greet it, list, ask for models that are not there, detach
// twice, send malformed, oversized and hostile frames — each answered with a
// typed error, the server still serving. One server per socket; a dead
// server's socket is taken over; the socket's folder must be private.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { ServeClient } from "../src/serve/client.ts";
import { ServeError } from "../src/serve/errors.ts";
import { defaultSocketPath, prepareSocketFolder } from "../src/serve/socket-path.ts";
import { ResidentServer } from "../src/serve/server.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { socketFolder, startServer, type ServerProcess } from "./support/serve-process.ts";

const GVR1 = 0x31525647;

/** Raw bytes to the socket, as a hostile or broken client would send them; resolves with what came back before the server closed. */
async function rawExchange(socket: string, bytes: Uint8Array, waitMs = 2000): Promise<string> {
  let got = "";
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  const s = await Bun.connect({ unix: socket, socket: { data: (_, d) => void (got += new TextDecoder().decode(d)), close: () => closed(), error: () => closed() } });
  s.write(bytes);
  await Promise.race([done, Bun.sleep(waitMs)]);
  s.end();
  return got;
}

function frame(json: string, { bin = 0, fds = 0, magic = GVR1, claim }: { bin?: number; fds?: number; magic?: number; claim?: number } = {}): Uint8Array {
  const body = new TextEncoder().encode(json);
  const out = new Uint8Array(16 + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic, true);
  v.setUint32(4, claim ?? body.length, true);
  v.setUint32(8, bin, true);
  v.setUint32(12, fds, true);
  out.set(body, 16);
  return out;
}

const code = async (p: Promise<unknown>) => ((await p.then(() => null, (e: unknown) => e)) as ServeError | null)?.code;

describe("a server without a GPU answers every request with a reply or a typed error", () => {
  let folder: ReturnType<typeof socketFolder>;
  let server: ServerProcess;
  let client: ServeClient;

  beforeAll(async () => {
    folder = socketFolder();
    server = await startServer(folder.socket, [], undefined, { CUDA_VISIBLE_DEVICES: "" }); // a server that sees no GPU, on any machine
    client = await ServeClient.connect({ socket: folder.socket, client: "serve.test" });
  });

  afterAll(async () => {
    client?.close();
    server?.proc.kill("SIGTERM");
    await server?.proc.exited;
    folder?.cleanup();
  });

  test("the socket is 0600 in a 0700 folder, and the greeting names the server", () => {
    expect(statSync(folder.socket).mode & 0o777).toBe(0o600);
    expect(statSync(folder.dir).mode & 0o777).toBe(0o700);
    expect(client.serverPid).toBe(server.proc.pid);
  });

  test("list and stats of an empty server", async () => {
    expect(await client.list()).toEqual([]);
    const stats = await client.stats();
    expect(stats).toMatchObject({ pid: server.proc.pid, models: [], devices: [] });
    expect(stats.clients).toBeGreaterThanOrEqual(1);
  });

  test("attach to an unknown model, unload one, detach twice: NO_SUCH_MODEL, NO_SUCH_MODEL, NOT_ATTACHED", async () => {
    expect(await code(client.attach("m42"))).toBe("NO_SUCH_MODEL");
    expect(await code(client.attach("/no/such/model.gguf"))).toBe("NO_SUCH_MODEL");
    expect(await code(client.unload("m1"))).toBe("NO_SUCH_MODEL");
    const e = (await client.unload("m1").catch((x: unknown) => x)) as ServeError;
    expect(e.message).toBe("no resident model is m1");
    expect(e.hint).toContain("bun run serve list");
    for (let i = 0; i < 2; i++) {
      const reply = await rawExchange(folder.socket, frame(JSON.stringify({ v: 1, id: 7, op: "detach", attachment: "a1" })), 300);
      expect(reply).toContain('"code":"NOT_ATTACHED"');
    }
  });

  test("a load on a machine without a GPU is NO_CUDA_DEVICE (exit 3), and a missing file LOAD_FAILED with the loader's code", async () => {
    const path = await ensureModelFixture("tiny-qwen2-q4_k_m");
    const e = (await client.load(path).catch((x: unknown) => x)) as ServeError;
    expect([e.code, e.exitCode]).toEqual(["NO_CUDA_DEVICE", 3]);
    const missing = (await client.load("/no/such/file.gguf").catch((x: unknown) => x)) as ServeError;
    expect([missing.code, missing.causeCode]).toEqual(["LOAD_FAILED", "FILE_NOT_FOUND"]);
    expect(await client.list()).toEqual([]); // still serving
  });

  test("malformed requests: not JSON, another version, an unknown op, a relative path — BAD_REQUEST each, the connection kept", async () => {
    const replies = await Promise.all([
      rawExchange(folder.socket, frame("{not json"), 300),
      rawExchange(folder.socket, frame(JSON.stringify({ v: 2, id: 1, op: "list" })), 300),
      rawExchange(folder.socket, frame(JSON.stringify({ v: 1, id: 2, op: "format-disk" })), 300),
      rawExchange(folder.socket, frame(JSON.stringify({ v: 1, id: 3, op: "load", path: "relative.gguf" })), 300),
    ]);
    for (const r of replies) expect(r).toContain('"code":"BAD_REQUEST"');
    expect(replies[3]).toContain("path");
  });

  test("hostile frames — bad magic, an oversized claim, a binary part, a cut header — are refused and the connection closed; the server goes on", async () => {
    const hostile = [
      frame("{}", { magic: 0xdeadbeef }),
      frame("{}", { claim: 1 << 30 }),
      frame(JSON.stringify({ v: 1, id: 1, op: "list" }), { bin: 8 }),
      new Uint8Array([0x47, 0x56, 0x52]),
    ];
    for (const bytes of hostile) {
      const reply = await rawExchange(folder.socket, bytes, 500);
      if (bytes.length > 3) expect(reply).toContain('"code":"BAD_REQUEST"');
    }
    await server.waitFor("protocol-error");
    expect(await client.list()).toEqual([]);
  });

  test("a fuzz run of 400 mutated frames against the live server: it answers a greeting after each batch", async () => {
    let seed = 0x5eed;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24);
    const valid = [{ v: 1, id: 1, op: "list" }, { v: 1, id: 2, op: "attach", model: "m1" }, { v: 1, id: 3, op: "detach", attachment: "a1" }, { v: 1, id: 4, op: "stats" }];
    for (let batch = 0; batch < 8; batch++) {
      const sends: Promise<string>[] = [];
      for (let i = 0; i < 50; i++) {
        const bytes = frame(JSON.stringify(valid[Math.floor(rand() * valid.length)]));
        for (let m = 1 + Math.floor(rand() * 4); m > 0; m--) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
        sends.push(rawExchange(folder.socket, bytes.subarray(0, Math.max(1, Math.floor(rand() * bytes.length * 1.2))), 100));
      }
      await Promise.all(sends);
      const check = await ServeClient.connect({ socket: folder.socket });
      expect((await check.stats()).pid).toBe(server.proc.pid);
      check.close();
    }
  }, 60_000);

  test("replies come for each id, out of order if need be, and events never answer a request", async () => {
    const results = await Promise.all([client.stats(), client.list(), code(client.attach("m9")), client.list()]);
    expect(results[1]).toEqual([]);
    expect(results[2]).toBe("NO_SUCH_MODEL");
  });
});

describe("one server per socket", () => {
  test("a second server on the same socket refuses to start (IN_USE), naming the socket", async () => {
    const folder = socketFolder();
    const first = await startServer(folder.socket);
    try {
      const e = (await ResidentServer.start({ socket: folder.socket }).catch((x: unknown) => x)) as ServeError;
      expect(e.code).toBe("IN_USE");
      expect(e.message).toBe(`another server is running on ${folder.socket}`);
    } finally {
      first.proc.kill("SIGTERM");
      await first.proc.exited;
      folder.cleanup();
    }
  });

  test("a server killed with SIGKILL leaves its socket; the next one replaces it and serves", async () => {
    const folder = socketFolder();
    try {
      const dead = await startServer(folder.socket);
      dead.proc.kill("SIGKILL");
      await dead.proc.exited;
      expect(statSync(folder.socket).isSocket()).toBe(true); // left behind
      expect(await code(ServeClient.connect({ socket: folder.socket }))).toBe("NO_SERVER");
      const next = await startServer(folder.socket);
      try {
        const c = await ServeClient.connect({ socket: folder.socket });
        expect(c.serverPid).toBe(next.proc.pid);
        c.close();
      } finally {
        next.proc.kill("SIGTERM");
        expect(await next.proc.exited).toBe(0);
      }
    } finally {
      folder.cleanup();
    }
  });

  test("a server stopped with SIGTERM removes its socket and exits 0", async () => {
    const folder = socketFolder();
    try {
      const s = await startServer(folder.socket);
      s.proc.kill("SIGTERM");
      expect(await s.proc.exited).toBe(0);
      expect(() => statSync(folder.socket)).toThrow();
    } finally {
      folder.cleanup();
    }
  });
});

describe("the socket's place", () => {
  test("defaults: GGUF_VRAM_SOCKET, else XDG_RUNTIME_DIR, else /tmp/gguf-vram-<uid>", () => {
    expect(defaultSocketPath({ GGUF_VRAM_SOCKET: "/x/y.sock" })).toBe("/x/y.sock");
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: "/run/user/7" })).toBe("/run/user/7/gguf-vram/serve.sock");
    expect(defaultSocketPath({})).toBe(`/tmp/gguf-vram-${process.getuid!()}/serve.sock`);
  });

  test("a folder open to others is refused with a hint to make it private; a missing one is made 0700", () => {
    const folder = socketFolder();
    try {
      const open = join(folder.dir, "open");
      mkdirSync(open, { mode: 0o755 });
      chmodSync(open, 0o755);
      const e = (() => {
        try {
          prepareSocketFolder(join(open, "s.sock"));
        } catch (x) {
          return x as ServeError;
        }
      })();
      expect(e?.code).toBe("INSECURE_SOCKET");
      expect(e?.hint).toContain("chmod 700");
      const fresh = join(folder.dir, "fresh", "deeper");
      prepareSocketFolder(join(fresh, "s.sock"));
      expect(statSync(fresh).mode & 0o777).toBe(0o700);
    } finally {
      folder.cleanup();
    }
  });

  test("no server: a client gets NO_SERVER with the way to start one", async () => {
    const folder = socketFolder();
    try {
      const e = (await ServeClient.connect({ socket: folder.socket }).catch((x: unknown) => x)) as ServeError;
      expect(e.code).toBe("NO_SERVER");
      expect(e.hint).toContain("bun run serve");
    } finally {
      folder.cleanup();
    }
  });
});

describe("bun run serve from a shell, without a GPU", () => {
  const SERVE = new URL("../src/cli/serve.ts", import.meta.url).pathname;
  const cli = (args: string[]) => {
    const p = Bun.spawnSync([process.execPath, SERVE, ...args], { env: { ...process.env, NO_COLOR: "1", CUDA_VISIBLE_DEVICES: "" } });
    return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
  };

  test("the server needs a GPU: one line, exit 3", () => {
    const folder = socketFolder();
    try {
      const r = cli(["--socket", folder.socket]);
      expect(r.code).toBe(3);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toStartWith("error: no CUDA device");
    } finally {
      folder.cleanup();
    }
  });

  test("usage mistakes are exit 2, naming what is wrong; no server is exit 1 saying how to start one", () => {
    expect(cli(["bogus"])).toMatchObject({ code: 2, err: expect.stringContaining("unknown subcommand bogus") });
    expect(cli(["list", "--budget", "4G"])).toMatchObject({ code: 2, err: expect.stringContaining("--budget is a setting of the server") });
    expect(cli(["--keep-alive", "soon"])).toMatchObject({ code: 2, err: expect.stringContaining("--keep-alive takes a duration") });
    expect(cli(["load"])).toMatchObject({ code: 2, err: expect.stringContaining("takes one model file") });
    const folder = socketFolder();
    try {
      const r = cli(["list", "--socket", folder.socket]);
      expect([r.code, r.err.trim()]).toEqual([1, `error: no server is listening on ${folder.socket} — start one with \`bun run serve\` (or give its --socket)`]);
    } finally {
      folder.cleanup();
    }
  });

  test("list, stats and load against a running server: its answers, and its NO_CUDA_DEVICE as exit 3", async () => {
    const folder = socketFolder();
    const server = await startServer(folder.socket, [], undefined, { CUDA_VISIBLE_DEVICES: "" });
    try {
      expect(cli(["list", "--socket", folder.socket])).toMatchObject({ code: 0, out: "no model is resident\n" });
      expect(JSON.parse(cli(["stats", "--json", "--socket", folder.socket]).out)).toMatchObject({ pid: server.proc.pid, models: [] });
      const tiny = await ensureModelFixture("tiny-qwen2-q4_k_m");
      const load = cli(["load", tiny, "--socket", folder.socket]);
      expect(load.code).toBe(3);
      expect(load.err).toContain("error: no CUDA device");
      expect(cli(["unload", "m1", "--socket", folder.socket])).toMatchObject({ code: 1, err: expect.stringContaining("no resident model is m1") });
    } finally {
      server.proc.kill("SIGTERM");
      await server.proc.exited;
      folder.cleanup();
    }
  });
});
