// What the pool's safety rests on, shown with real threads and the real library
// (no GPU needed): a worker terminated inside a native call runs that call to
// its end, and Bun reports its `close` only after; its gate is retired only once
// the call is over, what the thread owed fails only after that, and a retired
// gate lets no further call in. Then the
// supervision of workers: a start that fails is kept as the typed cause of the
// load that finds no usable worker, and is tried again after a backoff.

import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { nativePath, openCuda } from "../src/cuda/index.ts";
import { debugBlock } from "../src/cuda/testing.ts";
import { LoadError } from "../src/load/index.ts";
import { FAKE_ARENA, fakePool, spanJob } from "./support/fake-pool.ts";
import { release, retire, WorkerDied, WorkerLink } from "../src/load/workers.ts";
import type { ToWorker } from "../src/load/worker-protocol.ts";

const BLOCKING = new URL("./support/blocking-worker.ts", import.meta.url);
const sharedI32 = () => new Int32Array(new SharedArrayBuffer(4));

let libraryPath = "";
beforeAll(async () => {
  await openCuda(); // builds the library if needed; no GPU is needed to call into it
  libraryPath = nativePath()!;
});

describe("a worker terminated inside a native call", () => {
  test("the call runs to its end and Bun reports close after it; retire() waits for the call, then no call gets in", async () => {
    const gate = sharedI32();
    const returned = sharedI32();
    const worker = new Worker(BLOCKING);
    let returnedAtClose = -1;
    const closed = new Promise<void>((resolve) =>
      worker.addEventListener("close", () => {
        returnedAtClose = Atomics.load(returned, 0);
        resolve();
      }),
    );
    worker.postMessage({ type: "init", libraryPath, gate });
    worker.postMessage({ type: "upload", returned, ms: 400 });
    while (Atomics.load(gate, 0) !== 1) await Bun.sleep(1); // inside the native call
    worker.terminate();
    expect(Atomics.load(returned, 0)).toBe(0); // still inside
    await closed;
    expect(returnedAtClose).toBe(1); // the order the pool's freeing relies on (and the gate guards besides)

    await retire(gate);
    expect(Atomics.load(returned, 0)).toBe(1); // retired only once the call was over
    expect(Atomics.load(gate, 0)).toBe(2);

    const again = sharedI32();
    expect(() => debugBlock(5_000, again, gate)).toThrow(/retired/);
    expect(Atomics.load(again, 0)).toBe(0); // it never ran
  });

  test("what the thread owed fails only after its native call returned", async () => {
    const returned = sharedI32();
    let released = false;
    const link = new WorkerLink(BLOCKING, 0, 0, async (l) => {
      await release(l);
      released = true;
    });
    await link.request({ type: "init", libraryPath, gate: link.gate } as unknown as ToWorker, "ready");
    const reply = link.request({ type: "upload", returned, ms: 400 } as unknown as ToWorker, "done");
    while (Atomics.load(link.gate, 0) !== 1) await Bun.sleep(1);
    link.terminate();
    const error = await reply.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerDied);
    expect((error as WorkerDied).running).toBe(true);
    expect(Atomics.load(returned, 0)).toBe(1); // so a caller that frees the arena now frees nothing in use
    expect(released).toBe(true);
  });
});

// ─── supervision ──────────────────────────────────────────────────────────────

const pool = (workers: number) => fakePool(workers);
const job = spanJob;
const arena = FAKE_ARENA;

afterEach(() => {
  delete process.env.FAKE_WORKER_MODE;
});

describe("workers that fail to start", () => {
  test("none of a device's workers start: the load fails with the real cause, typed; once it goes away, loads succeed", async () => {
    process.env.FAKE_WORKER_MODE = "initfail";
    const p = pool(2);
    try {
      await p.ready; // settles: the failure is the load's to report
      expect(p.workerStates).toEqual(["broken", "broken"]);
      const error = await p.upload([{ device: 0, arena, job: job(10, 2) }], "m.gguf").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LoadError);
      expect((error as LoadError).code).toBe("HOST_MEMORY");
      expect((error as LoadError).message).toContain("no upload worker for device 0 could start: gv_stager_create: cudaHostRegister");
      expect((error as LoadError).hint).toContain("starts its workers again");

      process.env.FAKE_WORKER_MODE = "slow"; // the cause goes away
      await Bun.sleep(250); // past the first backoff (0.1 s) and the retry's (0.2 s)
      const next = job(30, 2);
      expect((await p.upload([{ device: 0, arena, job: next }], "m.gguf")).bytes).toBe(next.bytes);
      expect(p.workerStates).toEqual(["ready", "ready"]);
      expect(new Set(next.claims)).toEqual(new Set([1, 2])); // both took spans
    } finally {
      await p.close();
    }
  });

  test("one worker of two fails: loads go on with the other, and it rejoins after its backoff", async () => {
    process.env.FAKE_WORKER_MODE = "slow,initfail:1";
    const p = pool(2);
    try {
      await p.ready;
      expect(p.workerStates).toEqual(["ready", "broken"]);
      const first = job(20, 2);
      expect((await p.upload([{ device: 0, arena, job: first }], "m.gguf")).bytes).toBe(first.bytes);
      expect(first.claims.every((c) => c === 1)).toBe(true); // worker 0 did it all

      process.env.FAKE_WORKER_MODE = "slow";
      await Bun.sleep(150);
      const second = job(40, 2);
      expect((await p.upload([{ device: 0, arena, job: second }], "m.gguf")).bytes).toBe(second.bytes);
      expect(p.workerStates).toEqual(["ready", "ready"]);
      expect(second.claims.includes(2)).toBe(true);
    } finally {
      await p.close();
    }
  });

  test("a start that keeps failing waits longer each time before the next try", async () => {
    process.env.FAKE_WORKER_MODE = "initfail";
    const p = pool(1);
    try {
      await p.ready;
      const hint = async () => ((await p.upload([{ device: 0, arena, job: job(4, 1) }], "m.gguf").catch((e: unknown) => e)) as LoadError).hint;
      const waits: number[] = [];
      for (let i = 0; i < 3; i++) {
        const text = await hint();
        waits.push(Number(/in ([\d.]+) s/.exec(text)![1]));
        await Bun.sleep(waits[i]! * 1000 + 20);
      }
      expect(waits[1]!).toBeGreaterThan(waits[0]!);
      expect(waits[2]!).toBeGreaterThan(waits[1]!);
    } finally {
      await p.close();
    }
  });
});
