// The README's library example runs as pasted: its code block, written to a file
// in the repository root and run. Without a GPU it plans, then reports
// NO_CUDA_DEVICE with exit code 3; with one it loads, verifies and exits 0.

import { expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gpu } from "./support/gpu.ts";

const ROOT = new URL("..", import.meta.url).pathname;

test("the library example in the README runs as pasted", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Using it as a library"));
  const code = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
  const file = join(ROOT, `example-${process.pid}.ts`);
  writeFileSync(file, code);
  try {
    const p = Bun.spawnSync([process.execPath, file], { cwd: ROOT });
    const out = p.stdout.toString();
    expect(out).toContain("qwen2: 291 tensors, 485452288 bytes of VRAM");
    if (gpu.available) {
      expect([p.exitCode, p.stderr.toString()]).toEqual([0, ""]);
      expect(out).toMatch(/attn_q at 0x[0-9a-f]+, 485452288 bytes in VRAM/);
    } else {
      expect(p.exitCode).toBe(3);
      expect(p.stderr.toString()).toStartWith("NO_CUDA_DEVICE: no CUDA device");
    }
  } finally {
    rmSync(file, { force: true });
  }
}, 60_000);

test.skipIf(gpu.count < 4)(`the four-GPU example in the README runs as pasted${gpu.count < 4 ? ` [skipped: needs 4 GPUs; this machine has ${gpu.count}]` : ""}`, () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("On several GPUs"));
  const code = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
  const file = join(ROOT, `example-multi-${process.pid}.ts`);
  writeFileSync(file, code);
  try {
    const p = Bun.spawnSync([process.execPath, file], { cwd: ROOT });
    expect([p.exitCode, p.stderr.toString()]).toEqual([0, ""]);
    const out = p.stdout.toString();
    expect(out).toContain("GPU 0: layers 0–18, GPU 1: layers 19–23");
    expect(out).toContain("output.weight is on GPU 1");
    expect(out).toMatch(/blk\.0\.attn_q\.weight on GPU 2 at 0x[0-9a-f]+, by the (peer|host) route/);
  } finally {
    rmSync(file, { force: true });
  }
}, 120_000);
