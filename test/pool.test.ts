// The upload pool without a GPU: stand-in workers (support/fake-upload-worker.ts)
// speak the real protocol and work the jobs' shared state as the native step
// does. Concurrent uploads keep their own cursors, a worker that dies fails the
// upload it was running at once (and only that one), the next upload gets a
// fresh worker, and a broken invariant is an error, never a silent success.

import { afterEach, describe, expect, test } from "bun:test";
import { LoadError } from "../src/load/index.ts";
import { WorkerDied } from "../src/load/pool.ts";
import { FAKE_ARENA, fakePool, spanJob } from "./support/fake-pool.ts";

const pool = fakePool;
const job = spanJob;
const arena = FAKE_ARENA;

afterEach(() => {
  delete process.env.FAKE_WORKER_MODE;
});

describe("uploads on a pool", () => {
  test("every span is claimed by exactly one worker, and the bytes add up", async () => {
    process.env.FAKE_WORKER_MODE = "slow";
    const p = pool(4);
    try {
      const j = job(60, 4);
      const stats = await p.upload([{ device: 0, arena, job: j }], "model.gguf");
      expect(stats.bytes).toBe(j.bytes);
      expect(j.claims.every((c) => c >= 1 && c <= 4)).toBe(true);
      expect(new Set(j.claims).size).toBeGreaterThan(1); // the work was shared
    } finally {
      await p.close();
    }
  });

  test("three uploads at once keep their own cursors and bytes", async () => {
    process.env.FAKE_WORKER_MODE = "slow";
    const p = pool(3);
    try {
      const jobs = [job(40, 3), job(55, 3), job(70, 3)];
      const results = await Promise.all(jobs.map((j) => p.upload([{ device: 0, arena, job: j }], "m.gguf")));
      results.forEach((r, i) => expect(r.bytes).toBe(jobs[i]!.bytes));
      for (const j of jobs) expect(j.claims.every((c) => c !== 0)).toBe(true);
    } finally {
      await p.close();
    }
  });

  test("cancelling one upload stops it alone", async () => {
    process.env.FAKE_WORKER_MODE = "slow";
    const p = pool(2);
    try {
      const [a, b] = [job(200, 2), job(30, 2)];
      const first = p.upload([{ device: 0, arena, job: a }], "m.gguf");
      const second = p.upload([{ device: 0, arena, job: b }], "m.gguf");
      setTimeout(() => a.shared.stop(), 20);
      const [ra, rb] = await Promise.allSettled([first, second]);
      expect(ra.status).toBe("rejected");
      expect(((ra as PromiseRejectedResult).reason as LoadError).code).toBe("CANCELLED");
      expect(rb.status).toBe("fulfilled");
      expect((rb as PromiseFulfilledResult<{ bytes: number }>).value.bytes).toBe(b.bytes);
    } finally {
      await p.close();
    }
  });
});

test("one load on two devices: a worker failing on device 1 stops device 0's job too, and the real error is the one reported", async () => {
  process.env.FAKE_WORKER_MODE = "slow,throw:2"; // workers 0, 1 serve device 0; 2, 3 device 1
  const p = pool(2, [0, 1]);
  try {
    const [a, b] = [job(400, 2), job(400, 2)];
    const e = await p.upload([{ device: 0, arena, job: a }, { device: 1, arena, job: b }], "m.gguf").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(WorkerDied);
    expect(a.shared.stopped).toBe(true);
    expect(a.shared.nextSpan).toBeLessThan(400); // stopped early, not run to the end
  } finally {
    await p.close();
  }
});

describe("a worker that dies", () => {
  for (const [mode, why] of [["slow,throw:1", "fake worker 1 broke"], ["slow,exit:1", "it exited with code 7"]] as const) {
    test(`(${mode}) fails the upload it was running within a second, with its message; the next upload gets a fresh worker`, async () => {
      process.env.FAKE_WORKER_MODE = mode;
      const p = pool(3);
      try {
        const t = performance.now();
        const e = await p.upload([{ device: 0, arena, job: job(60, 3) }], "m.gguf").catch((x: unknown) => x);
        expect(performance.now() - t).toBeLessThan(1000);
        expect(e).toBeInstanceOf(WorkerDied);
        expect((e as LoadError).code).toBe("UPLOAD_FAILED");
        expect((e as LoadError).message).toContain(`upload worker 1 died: ${why}`);
        // The replacement serves the next upload; every span still goes to exactly one worker.
        process.env.FAKE_WORKER_MODE = "slow";
        const again = job(30, 3);
        expect((await p.upload([{ device: 0, arena, job: again }], "m.gguf")).bytes).toBe(again.bytes);
        expect(again.claims.includes(2)).toBe(true); // worker id 1, respawned, took spans
      } finally {
        await p.close();
      }
    });
  }

  test("uploads queued behind the one it was running finish on the other workers", async () => {
    process.env.FAKE_WORKER_MODE = "throw:0";
    const p = pool(2);
    try {
      const [a, b] = [job(50, 2), job(50, 2)];
      const [ra, rb] = await Promise.allSettled([p.upload([{ device: 0, arena, job: a }], "m.gguf"), p.upload([{ device: 0, arena, job: b }], "m.gguf")]);
      if (rb.status === "rejected") throw rb.reason;
      expect(ra.status).toBe("rejected");
      expect(rb.status).toBe("fulfilled");
      expect(b.claims.every((c) => c === 2)).toBe(true); // worker 1 did them all
    } finally {
      await p.close();
    }
  });
});

test("an upload that breaks the invariant (a span claimed and never done) is UPLOAD_FAILED, not a success", async () => {
  process.env.FAKE_WORKER_MODE = "slow,skip:0";
  const p = pool(2);
  try {
    const e = await p.upload([{ device: 0, arena, job: job(20, 2) }], "m.gguf").catch((x: unknown) => x);
    expect((e as LoadError).code).toBe("UPLOAD_FAILED");
    expect((e as LoadError).message).toMatch(/internal invariant: span \d+ of 20 was never claimed/);
  } finally {
    await p.close();
  }
});

test("close() is idempotent, and a closed pool refuses uploads", async () => {
  const p = pool(2);
  await p.ready;
  await p.close();
  await p.close();
  const e = await p.upload([{ device: 0, arena, job: job(3, 2) }], "m.gguf").catch((x: unknown) => x);
  expect((e as LoadError).message).toContain("closed");
});
