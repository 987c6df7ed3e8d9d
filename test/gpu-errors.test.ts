// Every way a load can fail, on a real GPU: each ends in its typed error, and
// VRAM, pinned memory and the library's handles are back where they were.

import { afterEach, beforeAll, expect, test } from "bun:test";
import { closeSync, copyFileSync, mkdtempSync, openSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Arena, liveResources, memInfo } from "../src/cuda/index.ts";
import { Fault, injectFault, resetFaults } from "../src/cuda/testing.ts";
import { BROKEN_MODEL_CASES } from "../src/fixtures/broken-models.ts";
import { CORRUPT_CASES } from "../src/fixtures/corrupt.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { load, LoadError, type LoadErrorCode, type LoadOptions } from "../src/load/index.ts";
import { hugeSparseModel } from "./support/huge.ts";
import { describeGpu } from "./support/gpu.ts";
import { tempDirs } from "./support/temp.ts";

const tempDir = tempDirs(); // removed after this file's tests

const NOTHING_LIVE = { arenas: 0, arenaBytes: 0, pinnedRanges: 0, pinnedBytes: 0, stagers: 0, copies: 0 };
const free = () => memInfo(0).freeBytes;

async function failure(path: string, options: LoadOptions = {}): Promise<LoadError> {
  const e = await load(path, options).then(
    (m) => {
      m.close();
      return null;
    },
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(LoadError);
  return e as LoadError;
}

describeGpu("load errors leave VRAM where it was", () => {
  let dir = "";
  let tiny = "";
  let qwen = "";
  let baseline = 0;

  beforeAll(async () => {
    dir = tempDir("gguf-vram-errors-");
    tiny = await ensureModelFixture("tiny-qwen2-q4_k_m");
    qwen = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m");
    // From here on the context exists and the checksum kernel is loaded.
    (await load(tiny, { verify: true })).close();
    baseline = free();
  });

  afterEach(() => {
    resetFaults();
    expect(free()).toBe(baseline);
    expect(liveResources()).toEqual(NOTHING_LIVE);
  });

  const expectCode = async (path: string, code: LoadErrorCode, options?: LoadOptions) => {
    const e = await failure(path, options);
    expect(e.code).toBe(code);
    expect(e.message.length).toBeGreaterThan(10);
    expect(e.hint.length).toBeGreaterThan(10);
    return e;
  };

  test("file not found, a directory, not a regular file", async () => {
    await expectCode(join(dir, "missing.gguf"), "FILE_NOT_FOUND");
    await expectCode(dir, "IS_A_DIRECTORY");
    const socket = join(dir, "socket");
    const server = Bun.listen({ unix: socket, socket: { data() {} } });
    try {
      await expectCode(socket, "NOT_READABLE");
    } finally {
      server.stop(true);
    }
  });

  test("not GGUF; corrupted", async () => {
    const notGguf = join(dir, "not.gguf");
    writeFileSync(notGguf, CORRUPT_CASES.find((c) => c.name === "zip-magic")!.bytes());
    await expectCode(notGguf, "NOT_GGUF");
    const truncated = join(dir, "truncated.gguf");
    writeFileSync(truncated, CORRUPT_CASES.find((c) => c.name === "data-truncated")!.bytes());
    await expectCode(truncated, "CORRUPT_FILE");
  });

  test("tensor missing; invalid dimensions", async () => {
    for (const [name, code] of [["tensor-missing", "TENSOR_MISSING"], ["wrong-shape", "INVALID_DIMENSIONS"]] as const) {
      const file = join(dir, `${name}.gguf`);
      writeFileSync(file, await BROKEN_MODEL_CASES.find((c) => c.name === name)!.bytes());
      const e = await expectCode(file, code);
      expect(e.problems.length).toBeGreaterThan(0);
    }
  });

  test("out of VRAM, by the pre-check: the message says needed and free MiB", async () => {
    const blocker = Arena.create(0, Math.max(1, free() - 256 * 1024 * 1024));
    try {
      const e = await expectCode(qwen, "OUT_OF_VRAM");
      expect(e.message).toMatch(/needs [\d.]+ MiB of VRAM; device 0 has [\d.]+ MiB free of [\d.]+ MiB/);
      expect(e.exitCode).toBe(4);
    } finally {
      blocker.close();
    }
  });

  test("out of VRAM, by a real allocation: an arena larger than the card", async () => {
    const huge = await hugeSparseModel(dir);
    const e = await expectCode(huge, "OUT_OF_VRAM", { skipVramCheck: true });
    expect(e.message).toContain("MiB");
    await expectCode(huge, "OUT_OF_VRAM"); // and the pre-check catches it first without the flag
  });

  test("injected faults: allocation, pinning, copy, event", async () => {
    injectFault(Fault.DeviceAlloc, 1);
    expect((await expectCode(tiny, "OUT_OF_VRAM")).message).toContain("injected fault");
    injectFault(Fault.HostPin, 1);
    await expectCode(tiny, "HOST_MEMORY", { workers: 1 }); // its only worker cannot start
    injectFault(Fault.HostPin, 1);
    (await load(tiny, { workers: 3 })).close(); // one of three cannot: the other two load it
    injectFault(Fault.Copy, 3);
    await expectCode(qwen, "UPLOAD_FAILED");
    injectFault(Fault.Event, 5);
    await expectCode(qwen, "UPLOAD_FAILED");
  });

  test("a device index that does not exist", async () => {
    const e = await expectCode(tiny, "BAD_DEVICE", { device: 64 });
    expect(e.exitCode).toBe(2);
  });

  test("the file truncated, rewritten or replaced during the load", async () => {
    const copy = join(dir, "changing.gguf");
    const slow: LoadOptions = { workers: 0, slotBytes: 1 << 20 };
    copyFileSync(qwen, copy);
    let done = false;
    await expectCode(copy, "FILE_CHANGED", { ...slow, onProgress: () => void (done || ((done = true), truncateSync(copy, 200 << 20))) });

    copyFileSync(qwen, copy);
    done = false;
    await expectCode(copy, "FILE_CHANGED", {
      ...slow,
      onProgress: () => {
        if (done) return;
        done = true;
        const fd = openSync(copy, "r+");
        writeSync(fd, new Uint8Array([1]), 0, 1, 400 << 20);
        closeSync(fd);
      },
    });

    copyFileSync(qwen, copy);
    const other = join(dir, "other.gguf");
    copyFileSync(tiny, other);
    done = false;
    await expectCode(copy, "FILE_CHANGED", { ...slow, onProgress: () => void (done || ((done = true), renameSync(other, copy))) });
  });

  test("cancelled mid-upload", async () => {
    const controller = new AbortController();
    const e = await expectCode(qwen, "CANCELLED", { workers: 0, slotBytes: 1 << 20, signal: controller.signal, onProgress: () => controller.abort() });
    expect(e.exitCode).toBe(130);
  });

  test("and afterwards a load succeeds", async () => {
    using m = await load(qwen, { verify: true });
    expect(m.tensors.size).toBe(291);
    rmSync(dir, { recursive: true, force: true });
  });
});
