// Split GGUF models (NAME-00001-of-0000N.gguf, as gguf-split writes them): the
// set is found from any of its files, checked (every file present, numbered as
// named, the counts agreeing, the tensor total right, no tensor twice), and
// planned as one model whose tensors read from their own file; inspect shows
// the set, discovery lists it once, the load's JSON gives the files.

import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { discoverModels } from "../src/cli/discover.ts";
import { buildModel } from "../src/fixtures/generate.ts";
import { fixtureModel } from "../src/fixtures/models.ts";
import { ensureSplitFixture, type ShardSpec } from "../src/fixtures/split.ts";
import { v } from "../src/fixtures/values.ts";
import { ggmlTypeName } from "../src/gguf/index.ts";
import { LoadError, ModelFile, planLoad, uploadSpans } from "../src/load/index.ts";
import { tempDirs } from "./support/temp.ts";

const tempDir = tempDirs(); // removed after this file's tests

const NAME = "tiny-qwen3-q4_k_m";
let dir = "";

beforeAll(() => {
  dir = tempDir("gguf-vram-split-");
});

async function opened(path: string) {
  const f = await ModelFile.open(path);
  try {
    return { gguf: f.gguf, check: f.check, paths: f.paths, fds: f.fds.length };
  } finally {
    f.close();
  }
}

async function refusal(edit: (specs: ShardSpec[]) => void, open = 0, files = 3): Promise<LoadError> {
  const paths = await ensureSplitFixture(NAME, { files, dir }, edit);
  const e = await ModelFile.open(paths[open]!).then(
    (f) => (f.close(), null),
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(LoadError);
  return e as LoadError;
}

describe("a split set", () => {
  test("from its first, middle or last file: one model, the single file's tensors", async () => {
    const paths = await ensureSplitFixture(NAME, { files: 3, dir });
    expect(paths.map((p) => basename(p))).toEqual(["tiny-qwen3-q4_k_m-00001-of-00003.gguf", "tiny-qwen3-q4_k_m-00002-of-00003.gguf", "tiny-qwen3-q4_k_m-00003-of-00003.gguf"]);
    const single = await buildModel(fixtureModel(NAME));
    for (const p of paths) {
      const m = await opened(p);
      expect(m.check.problems).toEqual([]);
      expect(m.paths).toEqual(paths);
      expect(m.fds).toBe(3);
      expect(m.gguf.shards.map((s) => s.tensorCount)).toEqual([12, 12, 12]);
      const byName = new Map(m.gguf.tensors.map((t) => [t.name, t]));
      for (const t of single.tensors) {
        const got = byName.get(t.name)!;
        expect([t.name, ggmlTypeName(got.type), got.shape]).toEqual([t.name, ggmlTypeName(t.type), t.shape]);
      }
    }
  });

  test("the first file may hold only metadata (--no-tensor-first-split); spans read each tensor from its own file", async () => {
    const paths = await ensureSplitFixture(NAME, { files: 4, dir, emptyFirst: true });
    const f = await ModelFile.open(paths[2]!);
    try {
      expect(f.gguf.shards.map((s) => s.tensorCount)).toEqual([0, 12, 12, 12]);
      const plan = planLoad(f.gguf, f.check);
      expect(new Set(plan.tensors.map((t) => t.shard))).toEqual(new Set([1, 2, 3]));
      for (const s of uploadSpans(plan, 2 << 20)) {
        const inSpan = plan.tensors.filter((t) => t.shard === s.shard && t.fileOffset >= s.fileOffset && t.fileOffset < s.fileOffset + s.bytes);
        expect(inSpan.length).toBeGreaterThan(0); // a span never mixes files: its tensors are all in its shard
      }
      expect(plan.uploadBytes).toBe(f.gguf.tensorDataBytes);
    } finally {
      f.close();
    }
  });

  test("inspect shows the set; the load's --json lists the files; discovery lists the set once", async () => {
    const paths = await ensureSplitFixture(NAME, { files: 3, dir });
    const root = new URL("..", import.meta.url).pathname;
    const inspect = Bun.spawnSync([process.execPath, "src/cli/inspect.ts", paths[1]!], { cwd: root, env: { ...process.env, NO_COLOR: "1" } });
    expect(inspect.stdout.toString()).toContain("split into 3 files (metadata from the first):");
    const json = Bun.spawnSync([process.execPath, "src/cli/load.ts", "--dry-run", "--json", "--model", paths[2]!], { cwd: root, env: { ...process.env, CUDA_VISIBLE_DEVICES: "" } });
    const doc = JSON.parse(json.stdout.toString()) as { model: { shards: { path: string; tensors: number }[] }; plan: { tensors: { shard: number }[] } };
    expect(doc.model.shards.map((s) => [s.path, s.tensors])).toEqual(paths.map((p) => [p, 12]));
    expect(new Set(doc.plan.tensors.map((t) => t.shard))).toEqual(new Set([0, 1, 2]));
    const found = await discoverModels([], [{ dir: join(dir, "split"), label: "./models" }]);
    const sets = found.filter((c) => c.files === 3);
    expect(sets.map((c) => basename(c.path))).toContain("tiny-qwen3-q4_k_m-00001-of-00003.gguf");
    expect(found.filter((c) => c.path.includes("tiny-qwen3-q4_k_m-0000")).length).toBe(1);
  });
});

describe("a broken split set is refused, naming what is wrong", () => {
  test("a missing file is named", async () => {
    const paths = await ensureSplitFixture(NAME, { files: 3, dir: join(dir, "missing") });
    rmSync(paths[1]!);
    const e = (await ModelFile.open(paths[0]!).catch((x: unknown) => x)) as LoadError;
    expect(e.code).toBe("FILE_NOT_FOUND");
    expect(e.message).toBe(`${paths[1]} is missing: the model is split into 3 files`);
  });

  test("a file not named as its set says", async () => {
    const paths = await ensureSplitFixture(NAME, { files: 3, dir: join(dir, "renamed") });
    const odd = join(dir, "renamed", "model.gguf");
    renameSync(paths[0]!, odd);
    const e = (await ModelFile.open(odd).catch((x: unknown) => x)) as LoadError;
    expect(e.code).toBe("CORRUPT_FILE");
    expect(e.message).toContain("is one of 3 files of a split model (split.count), but its name is not NAME-0000k-of-00003.gguf");
  });

  const set = (i: number, key: string, value: ShardSpec["metadata"][number]["value"]) => (specs: ShardSpec[]) => {
    const m = specs[i]!.metadata;
    m[m.findIndex((e) => e.key === key)] = { key, value };
  };
  for (const [what, edit, says] of [
    ["a file numbered as another", set(1, "split.no", { type: "u16", value: 2 }), "says it is shard 3 (split.no 2), but its name makes it shard 2"],
    ["a file that counts the set differently", set(2, "split.count", { type: "u16", value: 4 }), "says the set has 4 files (split.count); the first file says 3"],
    ["files that disagree on the tensor total", set(0, "split.tensors.count", v.i32(35)), "and the first file disagree on the model's tensor count (split.tensors.count)"],
    ["a tensor total that is not the set's", (specs: ShardSpec[]) => [0, 1, 2].forEach((i) => set(i, "split.tensors.count", v.i32(35))(specs)), "the set holds 36 tensors, but split.tensors.count says 35"],
    ["a split key of the wrong type", set(0, "split.count", v.u32(3)), "split.count is a u32; gguf-split writes a u16"],
    ["a tensor in two files", (specs: ShardSpec[]) => specs[2]!.tensors.push(specs[1]!.tensors[0]!), "is in file 2 and again in file 3 of the set"],
    ["an empty file after the first", (specs: ShardSpec[]) => {
      specs[1]!.tensors.push(...specs[2]!.tensors.splice(0));
    }, "holds no tensor; only the first file of a split set may be empty"],
  ] as const) {
    test(what, async () => {
      const e = await refusal(edit as (s: ShardSpec[]) => void);
      expect(e.code).toBe("CORRUPT_FILE");
      expect(e.message).toContain(says);
      expect(e.hint).toContain("split");
    });
  }

  for (const key of ["split.no", "split.count", "split.tensors.count"]) {
    test(`a later file without ${key}, which gguf-split writes into every file`, async () => {
      const e = await refusal((specs) => {
        const m = specs[2]!.metadata;
        m.splice(m.findIndex((x) => x.key === key), 1);
      });
      expect(e.code).toBe("CORRUPT_FILE");
      expect(e.message).toContain(`tiny-qwen3-q4_k_m-00003-of-00003.gguf has no ${key}, which every file of a split set carries`);
      // The hint promises what the checks find (files that disagree), not that a mix of models is always caught.
      expect(e.hint).toBe("the files do not agree as one set written by gguf-split: fetch every file of the set again, or split the model again");
    });
  }

  test("the model inside a valid set is still checked by the registry", async () => {
    const e = await refusal((specs) => {
      const t = specs[2]!.tensors;
      t.splice(t.length - 1, 1); // one tensor fewer, and the total adjusted: a valid set of a broken model
      for (const s of specs) s.metadata[s.metadata.findIndex((m) => m.key === "split.tensors.count")] = { key: "split.tensors.count", value: v.i32(35) };
    });
    expect(e.code).toBe("TENSOR_MISSING");
  });
});
