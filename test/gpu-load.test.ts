// Weights into VRAM, checked against the GPU itself: the full-size Qwen2.5-0.5B
// fixture, the ledger against cudaMemGetInfo and nvidia-smi, verify, the tied
// head, load/free cycles, two models at once.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, openSync, closeSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkModel } from "../src/arch/index.ts";
import { liveResources, memInfo } from "../src/cuda/index.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { ggmlTypeName, readGguf } from "../src/gguf/index.ts";
import { Loader, load, loadModel, LoadError, verifyModel } from "../src/load/index.ts";
import { describeGpu, gpu } from "./support/gpu.ts";

const MiB = 1024 * 1024;
const QWEN = "qwen2.5-0.5b-instruct-q4_k_m";
const TIED = "qwen2.5-0.5b-instruct-q4_k_m-tied";

/** nvidia-smi's view of this process: used GPU memory in MiB, or null when it cannot say. */
function nvidiaSmiMiB(): number | null {
  const p = Bun.spawnSync(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]);
  if (p.exitCode !== 0) return null;
  for (const line of p.stdout.toString().trim().split("\n")) {
    const [pid, used] = line.split(",").map((s) => s.trim());
    if (Number(pid) === process.pid) return Number(used);
  }
  return null;
}

const free = () => memInfo(0).freeBytes;

describeGpu("loading Qwen2.5-0.5B-Instruct Q4_K_M into VRAM", () => {
  let path = "";
  let tiedPath = "";
  let baseline = 0;

  beforeAll(async () => {
    path = await ensureModelFixture(QWEN);
    tiedPath = await ensureModelFixture(TIED);
    // Warm the context and the checksum kernel, so the baseline includes them.
    (await load(path, { verify: true })).close();
    baseline = free();
  });

  afterAll(() => {
    expect(liveResources()).toMatchObject({ arenas: 0, pinnedRanges: 0, stagers: 0 });
  });

  test("291 tensors, every shape and type as the file and the registry say", async () => {
    using model = await load(path);
    const g = await readGguf(path);
    // The registry's expectations for the tensors this file has (it also lists optional ones it lacks).
    const expected = checkModel(g).expected.filter((e) => g.tensor(e.name) !== undefined);
    expect(model.tensors.size).toBe(291);
    expect(expected.length).toBe(291);
    for (const e of expected) {
      const t = model.tensor(e.name);
      expect([e.name, [...t.shape]]).toEqual([e.name, e.shape.map((d) => d.size)]);
      expect(ggmlTypeName(t.type)).toBe(ggmlTypeName(g.tensor(e.name)!.type));
      expect(t.devicePtr % 256n).toBe(0n);
    }
  });

  test("the ledger: data plus padding, 400–600 MB, matching cudaMemGetInfo and nvidia-smi", async () => {
    const before = free();
    const { model, report } = await loadModel(path);
    try {
      const ledger = model.ledger;
      expect(ledger.dataBytes).toBe(485_452_288);
      expect(ledger.totalBytes).toBe(ledger.dataBytes + ledger.paddingBytes);
      expect(ledger.totalBytes).toBe(model.vramBytes);
      expect(ledger.totalBytes).toBeGreaterThan(400e6);
      expect(ledger.totalBytes).toBeLessThan(600e6);
      const drop = before - free();
      expect(drop).toBeGreaterThanOrEqual(ledger.totalBytes);
      expect(drop - ledger.totalBytes).toBeLessThanOrEqual(ledger.paddingBytes + 64 * MiB);
      expect(report.freeBefore - report.freeAfter).toBe(drop);
      const smi = nvidiaSmiMiB();
      if (smi !== null) {
        // nvidia-smi counts the whole process: context plus the arena.
        expect(smi * MiB).toBeGreaterThanOrEqual(ledger.totalBytes);
        expect(smi * MiB - (gpu.device!.totalBytes - baseline) - ledger.totalBytes).toBeLessThanOrEqual(ledger.paddingBytes + 64 * MiB + 512 * MiB);
      }
    } finally {
      model.close();
    }
    expect(free()).toBe(before);
  });

  test("verify passes: every tensor's VRAM equals the file", async () => {
    using model = await load(path, { verify: true });
    const again = await verifyModel(model);
    expect(again.tensors).toBe(291);
    expect(again.bytes).toBe(485_452_288);
  });

  test("a byte flipped in the file, or in VRAM, fails verify naming the tensor", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gguf-vram-"));
    const copy = join(dir, "flipped.gguf");
    copyFileSync(path, copy);
    try {
      using model = await load(copy);
      const target = model.tensor("blk.7.ffn_down.weight");
      const fd = openSync(copy, "r+");
      const byte = new Uint8Array(1);
      const { readSync } = await import("node:fs");
      readSync(fd, byte, 0, 1, target.fileOffset + 1000);
      byte[0] = byte[0]! ^ 0x10;
      writeSync(fd, byte, 0, 1, target.fileOffset + 1000);
      closeSync(fd);
      const e = await verifyModel(model).then(
        () => null,
        (x: unknown) => x as LoadError,
      );
      expect(e?.code).toBe("VERIFY_FAILED");
      expect(e?.message).toContain("blk.7.ffn_down.weight");
      expect(e?.message).not.toContain("more tensor");

      // Put the file back, and flip a byte in VRAM instead.
      byte[0] = byte[0]! ^ 0x10;
      const fd2 = openSync(copy, "r+");
      writeSync(fd2, byte, 0, 1, target.fileOffset + 1000);
      closeSync(fd2);
      const head = model.tensor("output.weight");
      const vram = model.arena.read(head.offset + 77, 1);
      vram[0] = vram[0]! ^ 1;
      model.arena.write(head.offset + 77, vram);
      await expect(verifyModel(model)).rejects.toThrow("output.weight");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("VRAM holds the file's bytes: spot reads of tensors", async () => {
    using model = await load(path);
    const file = Bun.file(path);
    for (const name of ["token_embd.weight", "blk.0.attn_q.bias", "blk.23.ffn_down.weight", "output.weight"]) {
      const t = model.tensor(name);
      const n = Math.min(t.bytes, 1 << 20);
      const want = new Uint8Array(await file.slice(t.fileOffset, t.fileOffset + n).arrayBuffer());
      expect(Buffer.compare(model.arena.read(t.offset, n), want)).toBe(0);
    }
  });

  test("the tied build spends no VRAM on a second head", async () => {
    const before = free();
    using model = await load(tiedPath, { verify: true });
    const drop = before - free();
    const embd = model.tensor("token_embd.weight");
    const head = model.tensor("output.weight");
    expect(head.devicePtr).toBe(embd.devicePtr);
    expect(head.aliasOf).toBe("token_embd.weight");
    expect(model.ledger.get("output.weight")!.bytes).toBe(0);
    // No head; the embedding is the head's Q8_0 (144,643,072 B), as llama-quantize makes a tied one, not Q5_0 (93,592,576 B).
    expect(model.ledger.dataBytes).toBe(485_452_288 - 144_643_072 - 93_592_576 + 144_643_072);
    expect(drop).toBeLessThan(model.ledger.totalBytes + 64 * MiB);
  });

  test("20 load/free cycles leak nothing", async () => {
    const start = free();
    const loader = await Loader.open();
    try {
      for (let i = 0; i < 20; i++) {
        const { model } = await loader.load(path);
        expect(model.tensors.size).toBe(291);
        model.close();
        expect(free()).toBe(start);
      }
    } finally {
      await loader.close();
    }
    expect(free()).toBe(start);
    expect(liveResources()).toEqual({ arenas: 0, arenaBytes: 0, pinnedRanges: 0, pinnedBytes: 0, stagers: 0, copies: 0 });
  });

  test("two models on one device at once are accounted separately", async () => {
    const start = free();
    using a = await load(path);
    const afterA = free();
    using b = await load(tiedPath);
    const afterB = free();
    expect(a.ledger.totalBytes).not.toBe(b.ledger.totalBytes);
    expect(start - afterA).toBeGreaterThanOrEqual(a.vramBytes);
    expect(afterA - afterB).toBeGreaterThanOrEqual(b.vramBytes);
    expect(afterA - afterB).toBeLessThan(b.vramBytes + 64 * MiB);
    expect(liveResources().arenaBytes).toBe(a.vramBytes + b.vramBytes);
    // Each holds its own bytes.
    expect(Buffer.compare(a.read("blk.3.attn_q.weight"), b.read("blk.3.attn_q.weight"))).toBe(0);
    expect(a.tensor("token_embd.weight").devicePtr).not.toBe(b.tensor("token_embd.weight").devicePtr);
    b.close();
    expect(free()).toBe(afterA);
  });

  test("with workers = 0 the main thread uploads the same bytes", async () => {
    using model = await load(path, { workers: 0, verify: true });
    expect(model.tensors.size).toBe(291);
  });
});
