// bun run fixtures [name…] [--all] [--sparse] [--dir DIR] [--list]
// Writes the synthetic models and the corrupt files that tests and benchmarks
// use. Everything is deterministic, so nothing generated is committed.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { BROKEN_MODEL_CASES } from "../fixtures/broken-models.ts";
import { CORRUPT_CASES } from "../fixtures/corrupt.ts";
import { ensureModelFixture, fixturesDir } from "../fixtures/generate.ts";
import { FIXTURE_MODELS } from "../fixtures/models.ts";
import { fixtureWriteError } from "../fixtures/write-errors.ts";
import { qwenTokenizer } from "../fixtures/tokenizer.ts";
import { boolFlag, parseFlags, splitArgs, UsageError } from "./args.ts";
import { bold, dim, humanBytes, ms, table } from "./format.ts";
import { runMain, type MainContext } from "./main.ts";

const USAGE = `usage: bun run fixtures [name…] [--all] [--sparse] [--dir DIR] [--list]

  (no names)  the tiny models, the Qwen2.5-0.5B layouts, and every corrupt case
  --all       every model, the 7B (4.7 GB) and 14B (15.7 GB) layouts included
  --sparse    leave tensor data as a hole: real headers, no disk used
  --dir DIR   write there instead of ${fixturesDir()}
  --list      list the models and cases, write nothing`;

/** What tests and the default benchmark need; the large layouts are asked for by name or --all. */
const DEFAULT_MODELS = ["tiny-qwen2-q4_k_m", "tiny-llama-mixed", "qwen2.5-0.5b-instruct-q4_k_m", "qwen2.5-0.5b-instruct-q4_k_m-tied"];

const Flags = z.object({ all: boolFlag, sparse: boolFlag, dir: z.string().min(1, "must be a directory").optional(), list: boolFlag, help: boolFlag });

async function main(argv: readonly string[], { signal }: MainContext): Promise<number> {
  const args = splitArgs(argv, ["dir"]);
  const flags = parseFlags(Flags, args.flags);
  if (flags.help) return (console.log(USAGE), 0);
  if (flags.list) {
    console.log(bold("models"));
    console.log(table(FIXTURE_MODELS.map((m) => [m.name, dim(m.title)])));
    console.log(bold(`corrupt files (${CORRUPT_CASES.length})`), dim("and broken models"), `(${BROKEN_MODEL_CASES.length})`);
    console.log(table([...CORRUPT_CASES, ...BROKEN_MODEL_CASES].map((c) => [c.name, dim(c.expect)])));
    return 0;
  }
  const known = FIXTURE_MODELS.map((m) => m.name);
  for (const n of args.positionals) if (!known.includes(n)) throw new UsageError(`no fixture model named ${n} (see --list)`);
  const names = args.positionals.length > 0 ? args.positionals : flags.all ? known : DEFAULT_MODELS;
  const dir = flags.dir ?? fixturesDir();

  const tok = await qwenTokenizer(151_936);
  console.log(dim(`Qwen2.5 tokenizer: ${tok.source === "synthetic" ? "synthetic arrays of the real counts (llama.cpp's ggml-vocab-qwen2.gguf not found; set GGUF_VRAM_VOCAB_DIR)" : "copied from llama.cpp's ggml-vocab-qwen2.gguf"}`));
  for (const name of names) {
    const t = performance.now();
    let wrote = 0;
    const path = await ensureModelFixture(name, { dir, sparse: flags.sparse ?? false, signal, onWrite: (_, bytes) => (wrote = bytes) });
    console.log(wrote > 0 ? `wrote ${path} (${humanBytes(wrote)}) in ${ms(performance.now() - t)}` : dim(`kept  ${path} (up to date)`));
  }
  if (args.positionals.length === 0) {
    const corruptDir = join(dir, "corrupt");
    const write = (path: string, bytes: Uint8Array) => {
      try {
        mkdirSync(corruptDir, { recursive: true });
        writeFileSync(path, bytes);
      } catch (e) {
        throw fixtureWriteError(e, path, bytes.length) ?? e;
      }
    };
    for (const c of CORRUPT_CASES) write(join(corruptDir, `${c.name}.gguf`), c.bytes());
    for (const c of BROKEN_MODEL_CASES) write(join(corruptDir, `model-${c.name}.gguf`), await c.bytes());
    console.log(`wrote ${CORRUPT_CASES.length + BROKEN_MODEL_CASES.length} corrupt files to ${corruptDir}`);
  }
  return 0;
}

if (import.meta.main) runMain(main, { command: "bun run fixtures", graceful: true });
