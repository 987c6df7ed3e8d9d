// `bun run load` on several GPUs: --devices/--split/--replicas and their usage
// errors, the dry-run JSON of a split and of replicas with no GPU at all, the
// plan and summary device by device, per-device progress, nvidia-smi's rows
// mapped to devices, and the interactive choice of several GPUs. A stand-in GPU
// with several devices (support/fake-gpu.ts) plays the machine.

import { beforeAll, describe, expect, test } from "bun:test";
import { PassThrough } from "node:stream";
import { normalBusId, smiBytesByDevice } from "../src/cli/backend.ts";
import { loadCommand } from "../src/cli/load.ts";
import { runInteractive } from "../src/cli/load-interactive.ts";
import { progressText } from "../src/cli/load-summary.ts";
import { describeError } from "../src/cli/main.ts";
import { ensureModelFixture } from "../src/fixtures/generate.ts";
import { layerAssignment } from "../src/load/index.ts";
import { LoadJsonSchema, type LoadJsonDoc } from "./cli-load-json.ts";
import { FakeGpu, fakeDevice } from "./support/fake-gpu.ts";
import { KEY, Terminal } from "./support/terminal.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const SPACE = " ";
let qwen = ""; // 24 layers, 291 tensors, an output.weight of its own
let phi3 = ""; // 3 layers, 22 tensors, a tied head and two RoPE factor tensors

beforeAll(async () => {
  qwen = await ensureModelFixture("qwen2.5-0.5b-instruct-q4_k_m", { sparse: true });
  phi3 = await ensureModelFixture("tiny-phi3-q4_k_m");
});

const twoGpus = () => new FakeGpu([fakeDevice(0, "Fake H100 80GB", 80 * GiB), fakeDevice(1, "Fake L4 24GB", 24 * GiB)]);

async function run(argv: string[], gpu: FakeGpu = twoGpus(), options: { tty?: boolean } = {}) {
  const stdin = new PassThrough();
  let out = "";
  let err = "";
  const stdout = { write: (t: string) => (out += t) };
  const stderr = { write: (t: string) => (err += t), isTTY: options.tty === true };
  let code: number;
  try {
    code = await loadCommand(argv, { stdin, stdout, stderr, interactive: false, gpu, signal: new AbortController().signal });
  } catch (e) {
    const d = describeError(e, false, "bun run load");
    err += d.line;
    code = d.exitCode;
  }
  return { code, out, err, gpu };
}

async function json(argv: string[], gpu: FakeGpu = twoGpus()): Promise<LoadJsonDoc> {
  const r = await run(["--json", ...argv], gpu);
  expect([r.code, r.err]).toEqual([0, ""]);
  return LoadJsonSchema.parse(JSON.parse(r.out));
}

/** Every first–last layer range of `assignment` (layerAssignment's output) for device index i. */
function layersOf(assignment: number[], nLayer: number, i: number): [number, number] | null {
  const held = assignment.slice(0, nLayer).flatMap((d, il) => (d === i ? [il] : []));
  return held.length > 0 ? [held[0]!, held.at(-1)!] : null;
}

function sum(xs: number[]): number {
  return xs.reduce((n, x) => n + x, 0);
}

// ─── flags ────────────────────────────────────────────────────────────────────

describe("flags", () => {
  test("--devices and --split reach the load as given; --replicas too", async () => {
    const split = await run(["--model", phi3, "--devices", "0,1", "--split", "3,1"]);
    expect(split.code).toBe(0);
    expect(split.gpu.loads[0]!.options).toMatchObject({ devices: [0, 1], split: [3, 1] });
    expect(split.gpu.loads[0]!.options.device).toBeUndefined();
    const replicas = await run(["--model", phi3, "--replicas=1,0"]);
    expect(replicas.code).toBe(0);
    expect(replicas.gpu.loads[0]!.options).toMatchObject({ replicas: [1, 0] });
    expect(replicas.gpu.loads[0]!.options.devices).toBeUndefined();
  });

  test("--devices without --split: the load gets the free VRAM the plan was split by, so it places what was shown", async () => {
    const gpu = new FakeGpu([fakeDevice(0, "A", 80 * GiB, 60 * GiB), fakeDevice(1, "B", 80 * GiB, 20 * GiB)]);
    const r = await run(["--model", qwen, "--devices", "0,1"], gpu);
    expect(r.code).toBe(0);
    expect(gpu.loads[0]!.options.split).toEqual([60 * GiB, 20 * GiB]);
    expect(r.out).toContain("in proportion to free VRAM (60.00 GiB : 20.00 GiB)");
    const a = layerAssignment(24, [3, 1]); // 60:20 is 3:1
    expect(r.out).toMatch(new RegExp(`GPU 1 +B +layers ${layersOf(a, 24, 1)!.join("–")} \\+ output`));
  });

  test("usage errors: exit code 2 and one line naming the flag and what it takes", async () => {
    const list = "must be GPU indices: whole numbers from 0 to 1023, separated by commas (e.g. 0,1)";
    const proportions = "must be proportions, one per GPU of --devices: numbers ≥ 0 separated by commas, at least one above 0 (e.g. 3,1)";
    const cases: [string[], string][] = [
      [["--devices", "x"], `--devices ${list} (got "x") (see bun run load --help)`],
      [["--devices", "0,,1"], `--devices ${list} (got "0,,1")`],
      [["--devices="], `--devices ${list} (got "")`],
      [["--devices", "0,2000"], `--devices ${list} (got "0,2000")`],
      [["--devices", "1,0,1"], `--devices must name each GPU once (e.g. 0,1) (got "1,0,1")`],
      [["--replicas", "1.5"], `--replicas ${list} (got "1.5")`],
      [["--replicas", "-1"], `--replicas ${list} (got "-1")`],
      [["--split", "3,-1", "--devices", "0,1"], `--split ${proportions} (got "3,-1")`],
      [["--split", "0,0", "--devices", "0,1"], `--split ${proportions} (got "0,0")`],
      [["--devices", "0,1", "--split", "a"], `--split ${proportions} (got "a")`],
      [["--device", "0", "--devices", "0,1"], "--device and --devices are different placements: give one of them"],
      [["--device", "1", "--replicas", "0,1"], "--device and --replicas are different placements: give one of them"],
      [["--devices", "0,1", "--replicas", "2,3"], "--devices and --replicas are different placements: give one of them"],
      [["--split", "3,1"], "--split needs --devices: the proportions are theirs, one per GPU (e.g. --devices 0,1 --split 3,1)"],
      [["--replicas", "0,1", "--split", "1,1"], "--split needs --devices"],
      [["--devices", "0,1", "--split", "3,1,1"], "--split has 3 proportions for the 2 GPUs of --devices: give one per GPU"],
    ];
    for (const [argv, says] of cases) {
      const r = await run(argv);
      expect([argv.join(" "), r.code]).toEqual([argv.join(" "), 2]);
      const lines = r.err.split("\n").filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(says);
      expect(lines[0]).toEndWith("(see bun run load --help)");
      expect(lines[0]).not.toMatch(/Invalid input|expected|received|usage:/);
      expect(r.gpu.loads).toHaveLength(0);
    }
  });

  test("a GPU the machine lacks is exit code 2, naming the flag to fix, for a load and for a dry run", async () => {
    for (const argv of [["--devices", "0,5"], ["--replicas", "5,0"], ["--dry-run", "--devices", "0,5"], ["--dry-run", "--json", "--replicas", "0,5"]]) {
      const r = await run(["--model", phi3, ...argv]);
      expect([argv.join(" "), r.code]).toEqual([argv.join(" "), 2]);
      expect(r.err).toContain("device 5 does not exist: this machine has 2 CUDA devices (0..1)");
      expect(r.err).toContain(`pass ${argv.includes("--devices") ? "--devices" : "--replicas"} with indexes`);
      expect(r.out).toBe("");
      expect(r.gpu.loads).toHaveLength(0);
    }
  });

  test("--help documents the flags", async () => {
    const r = await run(["--help"]);
    expect(r.out).toContain("--devices 0,1   split the model across these GPUs by layers");
    expect(r.out).toContain("--split 3,1     the split's proportions, one per GPU of --devices");
    expect(r.out).toContain("--replicas 0,1  a whole copy of the model on each of these GPUs");
  });
});

// ─── dry runs without a GPU ───────────────────────────────────────────────────

describe("--dry-run --json with no GPU", () => {
  test("a split 3,1 of the 24-layer Qwen2.5: llama.cpp's layer ranges, tensors and arenas adding up", async () => {
    const doc = await json(["--dry-run", "--model", qwen, "--devices", "0,1", "--split", "3,1"], new FakeGpu([]));
    expect(doc).toMatchObject({ dryRun: true, device: null, route: null, vram: null, ledger: null, timings: null });
    expect(doc.devices).toBeUndefined();
    const a = layerAssignment(24, [3, 1]);
    expect(doc.plan.kind).toBe("split");
    expect(doc.plan.split).toEqual([3, 1]);
    expect(doc.plan.devices.map((d) => [d.device, d.layers])).toEqual([[0, layersOf(a, 24, 0)], [1, layersOf(a, 24, 1)]]);
    expect(a[24]).toBe(1); // the output layer: output.weight and output_norm on device 1
    for (const name of ["output.weight", "output_norm.weight"]) expect(doc.plan.tensors.find((t) => t.name === name)!.device).toBe(1);
    expect(doc.plan.tensors.find((t) => t.name === "token_embd.weight")!.device).toBe(0);
    expect(doc.plan.tensors.find((t) => t.name === `blk.${layersOf(a, 24, 1)![0]}.attn_q.weight`)!.device).toBe(1);
    // No tensor is on both devices here, and no head is tied: the entries are each device's own tensors.
    expect(sum(doc.plan.devices.map((d) => d.tensors))).toBe(291);
    expect(doc.plan.devices.map((d) => d.tensors)).toEqual([0, 1].map((i) => doc.plan.tensors.filter((t) => t.device === i).length));
    expect(sum(doc.plan.devices.map((d) => d.arenaBytes))).toBe(doc.plan.arenaBytes);
    expect(doc.plan.arenaBytes).toBe(doc.plan.dataBytes + doc.plan.paddingBytes);
    expect(doc.model.tensors).toBe(291);
  });

  test("a split with no --split and no GPU to ask is even", async () => {
    const doc = await json(["--dry-run", "--model", qwen, "--devices", "0,1"], new FakeGpu([]));
    const a = layerAssignment(24, [1, 1]);
    expect(doc.plan.split).toEqual([1, 1]);
    expect(doc.plan.devices.map((d) => d.layers)).toEqual([layersOf(a, 24, 0), layersOf(a, 24, 1)]);
  });

  test("a tied head and RoPE factors: the copies count once, so the entries add up to the names Model has", async () => {
    const doc = await json(["--dry-run", "--model", phi3, "--devices", "0,1", "--split", "1,1"], new FakeGpu([]));
    const on = (i: number) => doc.plan.tensors.filter((t) => t.device === i);
    const factors = ["rope_factors_long.weight", "rope_factors_short.weight"];
    for (const f of factors) expect(doc.plan.tensors.filter((t) => t.name === f).map((t) => t.device)).toEqual([0, 1]);
    const head = doc.plan.tensors.filter((t) => t.name === "output.weight");
    expect(head).toEqual([expect.objectContaining({ device: 1, copyOf: "token_embd.weight" })]);
    // Device 0 counts all it holds; device 1 all but the RoPE factors device 0 already counted (its head copy included).
    expect(doc.plan.devices.map((d) => d.tensors)).toEqual([on(0).length, on(1).length - factors.length]);
    // Model keeps one entry per name: the file's 22 tensors and output.weight.
    expect(sum(doc.plan.devices.map((d) => d.tensors))).toBe(new Set(doc.plan.tensors.map((t) => t.name)).size);
    expect(sum(doc.plan.devices.map((d) => d.tensors))).toBe(doc.model.tensors + 1);
    expect(sum(doc.plan.devices.map((d) => d.arenaBytes))).toBe(doc.plan.arenaBytes);
    expect(doc.plan.arenaBytes).toBe(doc.plan.dataBytes + doc.plan.paddingBytes);
  });

  test("replicas: each entry is the whole model", async () => {
    const doc = await json(["--dry-run", "--model", qwen, "--replicas", "0,1"], new FakeGpu([]));
    const one = await json(["--dry-run", "--model", qwen], new FakeGpu([]));
    expect(one.plan).toMatchObject({ kind: "single", split: null, devices: [{ device: 0, layers: [0, 23], tensors: 291, arenaBytes: one.plan.arenaBytes }] });
    expect(doc.plan.kind).toBe("replicas");
    expect(doc.plan.split).toBeNull();
    expect(doc.plan.devices).toEqual([0, 1].map((device) => ({ device, layers: [0, 23], tensors: 291, arenaBytes: one.plan.arenaBytes })));
    expect(doc.plan.arenaBytes).toBe(2 * one.plan.arenaBytes);
    expect(doc.plan.tensors).toHaveLength(2 * 291);
  });

  test("the real command, no GPU visible: a split planned and printed, exit 0", () => {
    const cli = new URL("../src/cli/load.ts", import.meta.url).pathname;
    const p = Bun.spawnSync([process.execPath, cli, "--dry-run", "--json", "--model", qwen, "--devices", "0,1", "--split", "3,1"], { env: { ...process.env, CUDA_VISIBLE_DEVICES: "" } });
    expect(p.exitCode).toBe(0);
    const doc = LoadJsonSchema.parse(JSON.parse(p.stdout.toString()));
    expect(doc.plan.devices.map((d) => d.layers)).toEqual([layersOf(layerAssignment(24, [3, 1]), 24, 0), layersOf(layerAssignment(24, [3, 1]), 24, 1)]);
  }, 30_000);

  test("the text plan says what goes where", async () => {
    const split = await run(["--dry-run", "--model", phi3, "--devices", "0,1", "--split", "1,1"], new FakeGpu([]));
    expect(split.code).toBe(0);
    expect(split.out).toContain("in 2 allocations, one per GPU");
    expect(split.out).toContain("split by layers across GPUs 0, 1, as llama.cpp splits them, in proportions 1:1 (--split):");
    expect(split.out).toMatch(/GPU 0 +layers 0–1 +15 tensors +0\.1 MiB/);
    expect(split.out).toMatch(/GPU 1 +layer 2 \+ output +10 tensors +0\.1 MiB/);
    expect(split.out).toContain("rope_factors_long.weight, rope_factors_short.weight: a copy on each GPU that holds layers");
    expect(split.out).toContain("output.weight on GPU 1 is a copy of token_embd.weight (on GPU 0)");
    const replicas = await run(["--dry-run", "--model", qwen, "--replicas", "0,1,2"], new FakeGpu([]));
    expect(replicas.out).toContain("a whole copy on each of 3 GPUs (0, 1, 2):");
    expect(replicas.out).toContain("463.0 MiB on each of 3 GPUs");
    expect(replicas.out.match(/GPU \d +layers 0–23 \+ output +291 tensors +463\.0 MiB/g)).toHaveLength(3);
  });
});

// ─── loads ────────────────────────────────────────────────────────────────────

describe("a load on several GPUs", () => {
  test("fit check, then the summary GPU by GPU: the ledger, cudaMemGetInfo and nvidia-smi", async () => {
    const gpu = twoGpus();
    gpu.smiContextBytes = 500 * MiB;
    const r = await run(["--model", qwen, "--devices", "0,1", "--split", "3,1"], gpu);
    expect(r.code).toBe(0);
    const [p0, p1] = (await json(["--dry-run", "--model", qwen, "--devices", "0,1", "--split", "3,1"])).plan.devices;
    expect(r.out).toContain(`0: Fake H100 80GB — 79.00 GiB free of 80.00 GiB · its part fits (${(p0!.arenaBytes / MiB).toFixed(1)} MiB)`);
    expect(r.out).toContain(`1: Fake L4 24GB — 23.00 GiB free of 24.00 GiB · its part fits (${(p1!.arenaBytes / MiB).toFixed(1)} MiB)`);
    expect(r.out).toContain("291 tensors in VRAM across GPUs 0, 1, split by layers, in 60.0 ms");
    const block = (i: number) => r.out.slice(r.out.indexOf(`GPU ${i} (layers`)).split("\n\n")[0]!;
    for (const [i, part] of [[0, p0!], [1, p1!]] as const) {
      const b = block(i);
      const m = (part.arenaBytes / MiB).toFixed(1);
      expect(b).toContain(`the ledger      ${m} MiB:`);
      expect(b).toContain(`cudaMemGetInfo  free fell by ${m} MiB`);
      expect(b).toContain(`nvidia-smi      ${Math.ceil((part.arenaBytes + 500 * MiB) / MiB)} MiB for this process`);
    }
    expect(block(0)).toStartWith("GPU 0 (layers 0–18)");
    expect(block(1)).toStartWith("GPU 1 (layers 19–23 + output)");
    expect(r.out).toContain("in all: the ledger 463.0 MiB on 2 GPUs · cudaMemGetInfo free fell by 463.0 MiB");
    expect(r.out).toContain("12 workers per GPU");
    expect(r.out).not.toContain("route:");
    expect(gpu.open).toBe(0);
  });

  test("replicas: the route and the peer exchange; by the host, no exchange", async () => {
    const peer = await run(["--model", qwen, "--replicas", "0,1"]);
    expect(peer.code).toBe(0);
    expect(peer.out).toContain("291 tensors in VRAM on each of GPUs 0, 1 (a whole copy on each)");
    expect(peer.out).toContain("route: peer to peer (NVLink/PCIe P2P)");
    expect(peer.out).toMatch(/peer exchange +5\.0 ms/);
    const gpu = twoGpus();
    gpu.route = "host";
    const host = await run(["--model", qwen, "--replicas", "0,1"], gpu);
    expect(host.out).toContain("route: from the host");
    expect(host.out).not.toContain("peer exchange");
  });

  test("--json: VRAM device by device, nvidia-smi summed, the devices' facts, the route", async () => {
    const gpu = twoGpus();
    gpu.smiContextBytes = 500 * MiB;
    const doc = await json(["--model", qwen, "--devices", "1,0", "--split", "1,3"], gpu);
    expect(doc.route).toBe("pcie");
    expect(doc.device!.index).toBe(1);
    expect(doc.devices!.map((d) => [d.index, d.name])).toEqual([[1, "Fake L4 24GB"], [0, "Fake H100 80GB"]]);
    expect(doc.plan.devices.map((d) => d.device)).toEqual([1, 0]);
    const [a, b] = doc.plan.devices;
    const smi = (bytes: number) => Math.ceil((bytes + 500 * MiB) / MiB) * MiB;
    expect(doc.vram!.devices).toEqual([
      { device: 1, ledgerBytes: a!.arenaBytes, cudaMemGetInfoDropBytes: a!.arenaBytes, nvidiaSmiBytes: smi(a!.arenaBytes), freeBytesAfter: 23 * GiB - a!.arenaBytes, totalBytes: 24 * GiB },
      { device: 0, ledgerBytes: b!.arenaBytes, cudaMemGetInfoDropBytes: b!.arenaBytes, nvidiaSmiBytes: smi(b!.arenaBytes), freeBytesAfter: 79 * GiB - b!.arenaBytes, totalBytes: 80 * GiB },
    ]);
    expect(doc.vram).toMatchObject({ ledgerBytes: doc.plan.arenaBytes, cudaMemGetInfoDropBytes: doc.plan.arenaBytes, nvidiaSmiBytes: smi(a!.arenaBytes) + smi(b!.arenaBytes), totalBytes: 104 * GiB });
    expect(doc.ledger!.totalBytes).toBe(doc.plan.arenaBytes);
    const replicas = await json(["--model", qwen, "--replicas", "0,1"]);
    expect(replicas.route).toBe("peer");
    expect(replicas.timings!.peer).toBeGreaterThan(0);
  });

  test("one GPU keeps its fields, with one entry in plan.devices and vram.devices", async () => {
    const doc = await json(["--model", qwen, "--device", "1"]);
    expect(doc.devices).toBeUndefined();
    expect(doc.device!.index).toBe(1);
    expect(doc.route).toBe("pcie");
    expect(doc.plan.devices).toEqual([{ device: 1, layers: [0, 23], tensors: 291, arenaBytes: doc.plan.arenaBytes }]);
    expect(doc.vram!.devices).toEqual([{ device: 1, ledgerBytes: doc.plan.arenaBytes, cudaMemGetInfoDropBytes: doc.plan.arenaBytes, nvidiaSmiBytes: null, freeBytesAfter: 23 * GiB - doc.plan.arenaBytes, totalBytes: 24 * GiB }]);
    expect(doc.plan.tensors.every((t) => t.device === 1)).toBe(true);
  });

  test("the progress line on a terminal: the total and each GPU's share", async () => {
    const r = await run(["--model", qwen, "--devices", "0,1", "--split", "3,1"], twoGpus(), { tty: true });
    expect(r.code).toBe(0);
    const seen = r.gpu.progress;
    expect(seen.length).toBeGreaterThan(1);
    for (const p of seen) {
      const pct = (done: number, total: number) => Math.floor((done / total) * 100);
      const each = p.devices.map((d) => `GPU${d.device} ${pct(d.done, d.total)}%`).join(" ");
      expect(r.err).toMatch(new RegExp(`uploading [0-9.]+ MiB of 463\\.0 MiB \\(${pct(p.done, p.total)}%\\) · [0-9.]+ GB/s · ${each}`));
    }
    // The stand-in GPU moves device 1 slower, so the shares differ from each other and from the total.
    expect(r.err).toContain("(23%)");
    expect(r.err).toContain("GPU0 25% GPU1 21%");
  });

  test("progressText: one GPU shows no breakdown", () => {
    expect(progressText(5 * GiB, 10 * GiB, [{ device: 0, done: 5 * GiB, total: 10 * GiB }], 0.1)).toBe("uploading 5.00 GiB of 10.00 GiB (50%) · 53.7 GB/s");
    expect(progressText(9.1 * GiB, 14.6 * GiB, [{ device: 0, done: 4.7 * GiB, total: 7.3 * GiB }, { device: 1, done: 4.4 * GiB, total: 7.3 * GiB }], 0.1)).toBe("uploading 9.10 GiB of 14.60 GiB (62%) · 97.7 GB/s · GPU0 64% GPU1 60%");
  });
});

// ─── nvidia-smi ───────────────────────────────────────────────────────────────

describe("nvidia-smi's rows by device", () => {
  const devices = [fakeDevice(0, "A", 80 * GiB), fakeDevice(1, "B", 80 * GiB), { ...fakeDevice(2, "C", 80 * GiB), pciBusId: "0001:1B:00.0" }];

  test("bus ids compare whatever the domain's width and the case", () => {
    expect(normalBusId("00000000:18:00.0")).toBe(normalBusId("0000:18:00.0"));
    expect(normalBusId("00000001:1b:00.0")).toBe(normalBusId("0001:1B:00.0"));
    expect(normalBusId("0000:18:00.0")).not.toBe(normalBusId("0000:19:00.0"));
    expect(normalBusId("GPU-1234")).toBeNull();
  });

  test("this process's rows, by device; other processes, unknown buses and [N/A] left out", () => {
    const csv = ["4242, 00000000:00:00.0, 812", "999, 00000000:01:00.0, 5000", "4242, 00000000:01:00.0, [N/A]", "4242, 00000001:1B:00.0, 300", "4242, 00000000:7F:00.0, 77", ""].join("\n");
    expect(smiBytesByDevice(csv, 4242, devices)).toEqual(new Map([[0, 812 * MiB], [2, 300 * MiB]]));
    expect(smiBytesByDevice("", 4242, devices)).toEqual(new Map());
  });
});

// ─── interactive ──────────────────────────────────────────────────────────────

/** The screen as one line, without the right border notes draw where they wrap a line. */
function flat(term: Terminal): string {
  return term.flat.replace(/ │ /g, " ");
}

/** Waits until `text` is drawn after the last `after` (a prompt drawn is a prompt listening for keys). */
async function waitAfter(term: Terminal, after: string, text: string, ms = 3000): Promise<void> {
  const t0 = performance.now();
  while (!flat(term).slice(flat(term).lastIndexOf(after)).includes(text)) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${JSON.stringify(text)} after ${JSON.stringify(after)}; the screen shows:\n${term.screen.slice(-2000)}`);
    await Bun.sleep(5);
  }
}

function interactive(gpu: FakeGpu, path: string) {
  const term = new Terminal();
  const controller = new AbortController();
  const done = runInteractive([path], gpu, { input: term.input, output: term.output, signal: controller.signal, places: [] });
  return { term, controller, done };
}

const threeGpus = () => new FakeGpu([fakeDevice(0, "Fake H100 80GB", 80 * GiB), fakeDevice(1, "Fake L4 24GB", 24 * GiB), fakeDevice(2, "Fake T4 16GB", 16 * GiB, 100 * MiB)]);

describe("interactive, several GPUs", () => {
  test("split: choose the GPUs, see whether it fits and the plan by GPU, upload with shares, the summary", async () => {
    const gpu = threeGpus();
    gpu.stepMs = 150; // the bar redraws on a timer
    const { term, done } = interactive(gpu, qwen);
    await term.waitFor("Which GPU?");
    expect(term.screen).toContain("Several GPUs, one model split across them");
    expect(term.screen).toContain("A copy on each of several GPUs (replicas)");
    term.press(KEY.down, KEY.down, KEY.down, KEY.enter); // past the three GPUs: the split
    await term.waitFor("Which GPUs share the model?");
    expect(flat(term)).toContain("GPU 1: Fake L4 24GB (23.00 GiB free of 24.00 GiB)");
    term.press(KEY.down, KEY.down, SPACE, KEY.enter); // untick GPU 2
    await term.waitFor("Load ");
    expect(flat(term)).toMatch(/GPUs 0, 1: 102\.00 GiB free together for 463\.0 MiB · fits/);
    expect(flat(term)).toContain("split by layers across GPUs 0, 1, as llama.cpp splits them, in proportion to free VRAM (79.00 GiB : 23.00 GiB)");
    expect(flat(term)).toContain("its part fits");
    expect(flat(term)).toContain("Load 463.0 MiB across GPUs 0, 1?");
    term.press(KEY.enter); // Yes
    await term.waitFor("press Enter");
    expect(flat(term)).toMatch(/Uploading [0-9.]+ MiB of 463\.0 MiB · [0-9.]+ GB\/s · GPU0 \d+% GPU1 \d+%/);
    expect(flat(term)).toContain("tensors in VRAM across GPUs 0, 1, split by layers");
    expect(gpu.loads[0]!.options).toMatchObject({ devices: [0, 1], split: [79 * GiB, 23 * GiB] });
    term.press(KEY.enter);
    expect(await done).toBe(0);
    expect(gpu.open).toBe(0);
  });

  test("replicas: one GPU ticked is asked again; a GPU too small says so; No loads nothing", async () => {
    const gpu = threeGpus();
    const { term, done } = interactive(gpu, qwen);
    await term.waitFor("Which GPU?");
    term.press(KEY.up, KEY.enter); // the last option: replicas
    await term.waitFor("Which GPUs get a copy? (each needs 463.0 MiB)", 3000);
    expect(flat(term)).toContain("GPU 2: Fake T4 16GB (100.0 MiB free of 16.00 GiB · does not fit (needs 463.0 MiB))");
    term.press(SPACE, KEY.down, SPACE, KEY.enter); // untick 0 and 1: GPU 2 alone
    await waitAfter(term, "Replicas need two or more GPUs", "Which GPUs get a copy?");
    term.press(SPACE, KEY.enter); // tick GPU 0 again: 0 and 2
    await waitAfter(term, "the plan", "Load a copy of 463.0 MiB onto each of GPUs 0, 2 (925.9 MiB in all)?");
    expect(flat(term)).toContain("GPUs 0, 2: a copy (463.0 MiB) does not fit on GPU 2");
    expect(flat(term)).toContain("2: Fake T4 16GB — 100.0 MiB free of 16.00 GiB · its copy does not fit (needs 463.0 MiB)");
    term.press(KEY.right, KEY.enter); // No
    expect(await done).toBe(0);
    expect(gpu.loads).toHaveLength(0);
  });

  test("Ctrl-C in the GPU list cancels, exit 130", async () => {
    const gpu = threeGpus();
    const { term, done } = interactive(gpu, qwen);
    await term.waitFor("Which GPU?");
    term.press(KEY.up, KEY.enter);
    await term.waitFor("Which GPUs get a copy?");
    term.press(KEY.ctrlC);
    expect(await done).toBe(130);
    expect(gpu.loads).toHaveLength(0);
  });

  test("one GPU: no split or replicas to choose", async () => {
    const gpu = new FakeGpu();
    const { term, done } = interactive(gpu, qwen);
    await term.waitFor("Which GPU?");
    expect(term.screen).not.toContain("Several GPUs");
    expect(term.screen).not.toContain("replicas");
    term.press(KEY.ctrlC);
    expect(await done).toBe(130);
  });
});
