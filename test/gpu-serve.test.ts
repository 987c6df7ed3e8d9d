// Resident models on a real GPU: a server process keeps models in shareable
// VRAM; the C example (a separate process, no Bun) and the TypeScript client
// attach to them and find every tensor equal to the file; and the lifetimes
// hold with either side killed by SIGKILL, under 8 clients attaching at once,
// through evictions, keep-alives and shutdowns.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { memInfo } from "../src/cuda/index.ts";
import { ensureExample } from "../build.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { verifyModel } from "../src/load/index.ts";
import { ServeClient } from "../src/serve/client.ts";
import type { ServeError } from "../src/serve/errors.ts";
import { fileRange } from "./support/file-range.ts";
import { describeGpu, describeGpus, gpu } from "./support/gpu.ts";
import { socketFolder, startServer, type ServerProcess } from "./support/serve-process.ts";

const ATTACH_CHILD = new URL("./support/attach-child.ts", import.meta.url).pathname;
const SERVE_CLI = new URL("../src/cli/serve.ts", import.meta.url).pathname;
const free = (device = 0) => memInfo(device).freeBytes;


async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

/** Free VRAM settles once the driver has taken back what a process that ended had mapped. */
async function freeBackTo(target: number, ms = 10_000): Promise<number> {
  const t0 = performance.now();
  while (free() < target && performance.now() - t0 < ms) await Bun.sleep(20);
  return free();
}

const procStatus = (pid: number) => ({
  fds: Number(Bun.spawnSync(["sh", "-c", `ls /proc/${pid}/fd | wc -l`]).stdout.toString().trim()),
  rssKiB: Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]),
});

describeGpu("resident models: bun run serve, and clients in other processes", () => {
  let folder: ReturnType<typeof socketFolder>;
  let server: ServerProcess;
  let client: ServeClient;
  let example = "";
  let qwen = "";
  let seven = "";
  let moe = "";
  let baseline = 0;

  beforeAll(async () => {
    [qwen, seven, moe] = await Promise.all([ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m"), ensureModelFixture("qwen2.5-7b-instruct-q4_k_m"), ensureModelFixture("qwen1.5-moe-a2.7b-chat-q4_k_m")]);
    example = await ensureExample({ quiet: true });
    baseline = free();
    folder = socketFolder();
    server = await startServer(folder.socket, ["300000"]);
    client = await ServeClient.connect({ socket: folder.socket, client: "gpu-serve.test" });
  }, 600_000);

  afterAll(async () => {
    client?.close();
    server?.proc.kill("SIGTERM");
    expect(await server?.proc.exited).toBe(0);
    folder?.cleanup();
    expect(await freeBackTo(baseline)).toBe(baseline);
  });

  test("the C example, a process of its own, attaches to the 0.5B, the 7B and Qwen1.5-MoE: every tensor's GPU checksum equals the file's", async () => {
    for (const path of [qwen, seven, moe]) {
      const loaded = await client.load(path, { verify: true });
      expect(loaded.resident).toBe(false);
      const r = await run([example, loaded.model.id, "--socket", folder.socket]);
      expect([path, r.code, r.err]).toEqual([path, 0, ""]);
      expect(r.out).toContain(`device 0 (${gpu.device!.name}): ${loaded.model.tensors} tensors`);
      expect(r.out).toContain("every checksum equals the file's");
      console.log(r.out.trim());
    }
  }, 600_000);

  test("a second load of a resident model answers at once, resident; the TypeScript client's attachment reads as the file and verifies", async () => {
    const again = await client.load(qwen);
    expect(again.resident).toBe(true);
    using a = await client.attach(qwen);
    expect(a.tensors.size).toBe(again.model.tensors);
    for (const t of [...a.tensors.values()].filter((_, i) => i % 20 === 0)) expect([t.name, t.read()]).toEqual([t.name, fileRange(qwen, t.fileOffset, t.bytes)]);
    const report = await verifyModel(a);
    expect(report.tensors).toBeGreaterThan(0);
    expect((await client.list()).find((m) => m.id === again.model.id)!.holders.length).toBe(1);
  });

  test("attach to an unknown model, detach twice, unload while attached: typed errors, the server goes on", async () => {
    const code = async (p: Promise<unknown>) => ((await p.then(() => null, (e: unknown) => e)) as ServeError | null)?.code;
    expect(await code(client.attach("m999"))).toBe("NO_SUCH_MODEL");
    const other = await ServeClient.connect({ socket: folder.socket });
    const held = await other.attach(qwen);
    expect(await code(client.unload(qwen))).toBe("HELD");
    held.close();
    other.close();
  });

  test("a client killed with SIGKILL while attached: the server lets go of its hold, and the model can be unloaded", async () => {
    const { model } = await client.load(qwen);
    const child = Bun.spawn([process.execPath, ATTACH_CHILD, folder.socket, model.id, qwen], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const reader = child.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("attached");
    expect((await client.list()).find((m) => m.id === model.id)!.holders.map((h) => h.pid)).toContain(child.pid);
    child.kill("SIGKILL");
    await child.exited;
    await server.waitFor("disconnected", (e) => e.pid === child.pid);
    expect((await client.list()).find((m) => m.id === model.id)!.holders).toEqual([]);
    expect(await client.unload(model.id)).toBeGreaterThan(0);
  });

  test("8 client processes attaching and detaching 64 times each, at once: no growth in VRAM, or in the server's descriptors or RSS", async () => {
    const { model } = await client.load(seven);
    const round = (times: number) => Promise.all(Array.from({ length: 8 }, () => run([example, model.id, "--socket", folder.socket, "--repeat", String(times), "--json"])));
    await round(8); // warm: the server's first attaches allocate what it keeps
    const vram = free();
    const rss = async () => {
      const seq = server.events.filter((e) => e.type === "rss").length + 1;
      server.proc.kill("SIGUSR2"); // the server collects its garbage, then says its size
      return (await server.waitFor("rss", (e) => e.seq === seq)).rssKiB as number;
    };
    const before = { ...procStatus(server.proc.pid), rssKiB: await rss() };
    const results = await round(64);
    for (const r of results) expect([r.code, r.err]).toEqual([0, ""]);
    const samples = results.flatMap((r) => (JSON.parse(r.out) as { attachMs: number[] }).attachMs);
    expect(samples.length).toBe(8 * 64);
    const after = { ...procStatus(server.proc.pid), rssKiB: await rss() };
    expect(after.fds).toBe(before.fds);
    expect(after.rssKiB - before.rssKiB).toBeLessThan(16 * 1024);
    expect(await freeBackTo(vram)).toBe(vram);
    expect((await client.list()).find((m) => m.id === model.id)!.holders).toEqual([]);
    const counts = await client.stats();
    expect(counts.clients).toBe(1); // only this test's connection is left
  }, 600_000);
});

describeGpu("lifetimes with the server killed, evictions, keep-alive, shutdown", () => {
  let qwen = "";
  let tied = "";
  let baseline = 0;

  beforeAll(async () => {
    [qwen, tied] = await Promise.all([ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m"), ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m-tied")]);
    baseline = free();
  });

  test("the server killed with SIGKILL while a client holds a model: the weights stay readable and equal to the file; VRAM goes back when the client exits; a new server starts on the same path", async () => {
    const folder = socketFolder();
    try {
      const server = await startServer(folder.socket);
      const c = await ServeClient.connect({ socket: folder.socket });
      const { model } = await c.load(qwen);
      c.close();
      const child = Bun.spawn([process.execPath, ATTACH_CHILD, folder.socket, model.id, qwen], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
      const reader = child.stdout.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain("attached");
      server.proc.kill("SIGKILL");
      await server.proc.exited;
      child.stdin.write("check\n");
      child.stdin.flush();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain("equal to the file");
      child.stdin.end();
      expect(await child.exited).toBe(0);
      expect(await freeBackTo(baseline)).toBe(baseline);
      const next = await startServer(folder.socket);
      const c2 = await ServeClient.connect({ socket: folder.socket });
      expect(c2.serverPid).toBe(next.proc.pid);
      c2.close();
      next.proc.kill("SIGTERM");
      expect(await next.proc.exited).toBe(0);
    } finally {
      folder.cleanup();
    }
  }, 120_000);

  test("a budget for one model: the next evicts it (nobody holds it); a held one is never evicted: OUT_OF_VRAM names its holder; keep-alive ends idle ones", async () => {
    const folder = socketFolder();
    const oneModel = 600 * 1024 * 1024; // the 0.5B takes 492 MiB
    const server = await startServer(folder.socket, ["400", String(oneModel)]);
    try {
      const c = await ServeClient.connect({ socket: folder.socket });
      const a = await c.load(qwen, { keepAliveMs: -1 });
      const b = await c.load(tied, { keepAliveMs: -1 });
      await server.waitFor("unloaded", (e) => (e.model as { id: string }).id === a.model.id && e.reason === "evicted");
      const held = await c.attach(b.model.id);
      const e = (await c.load(qwen).catch((x: unknown) => x)) as ServeError;
      expect(e.code).toBe("OUT_OF_VRAM");
      expect(e.message).toContain(`${b.model.id} (${tied}`);
      expect(e.message).toContain(`held by pid ${process.pid}`);
      held.close();
      const short = await c.load(qwen, { keepAliveMs: 300 }); // b is evicted for it
      expect(short.resident).toBe(false);
      await server.waitFor("unloaded", (x) => (x.model as { id: string }).id === short.model.id && x.reason === "expired", 10_000);
      expect(await c.list()).toEqual([]);
      c.close();
    } finally {
      server.proc.kill("SIGTERM");
      expect(await server.proc.exited).toBe(0);
      folder.cleanup();
    }
    expect(await freeBackTo(baseline)).toBe(baseline);
  }, 120_000);

  test("bun run serve: SIGTERM frees every model and exits 0; Ctrl-C in a terminal exits 130", async () => {
    const folder = socketFolder();
    try {
      const term = Bun.spawn([process.execPath, SERVE_CLI, "--socket", folder.socket, "--json"], { stdout: "pipe", stderr: "pipe" });
      for (let i = 0; i < 200 && !(await Bun.file(folder.socket).exists()); i++) await Bun.sleep(25);
      const c = await ServeClient.connect({ socket: folder.socket });
      await c.load(qwen);
      c.close();
      term.kill("SIGTERM");
      expect(await term.exited).toBe(0);
      expect(await new Response(term.stdout).text()).toContain('"reason":"shutdown"');
      expect(await freeBackTo(baseline)).toBe(baseline);

      let screen = "";
      const tty = Bun.spawn([process.execPath, SERVE_CLI, "--socket", folder.socket], { terminal: { cols: 120, rows: 30, data: (_, d) => void (screen += new TextDecoder().decode(d)) } });
      for (let i = 0; i < 400 && !screen.includes("resident"); i++) await Bun.sleep(25);
      const c2 = await ServeClient.connect({ socket: folder.socket });
      await c2.load(qwen);
      c2.close();
      tty.terminal!.write("\x03");
      expect(await tty.exited).toBe(130);
      expect(screen).toContain("stopping");
      expect(await freeBackTo(baseline)).toBe(baseline);
    } finally {
      folder.cleanup();
    }
  }, 120_000);
});

describeGpus(2, "resident models across GPUs: a split and replicas attach and check out on every device", () => {
  test("the C example on a split over every GPU and on replicas", async () => {
    const folder = socketFolder();
    const server = await startServer(folder.socket);
    try {
      const example = await ensureExample({ quiet: true });
      const seven = await ensureModelFixture("qwen2.5-7b-instruct-q4_k_m");
      const c = await ServeClient.connect({ socket: folder.socket });
      const all = Array.from({ length: gpu.count }, (_, i) => i);
      for (const placement of [{ devices: all }, { replicas: all }]) {
        const { model } = await c.load(seven, { ...placement, verify: true });
        const r = await run([example, model.id, "--socket", folder.socket]);
        expect([r.code, r.err]).toEqual([0, ""]);
        for (const d of all) expect(r.out).toMatch(new RegExp(`device ${d} \\(.*\\): \\d+ tensors, .* every checksum equals the file's`));
        await c.unload(model.id);
      }
      c.close();
    } finally {
      server.proc.kill("SIGTERM");
      await server.proc.exited;
      folder.cleanup();
    }
  }, 600_000);
});
