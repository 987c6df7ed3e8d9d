// bun run fuzz [--cases N] [--model-cases N] [--seed S] [--real] [--json]
// Mutated GGUF files against the reader, edited models against the registry.
// Exit 0 when every input parsed or raised a GgufError in time and in bounded
// memory, 1 with a finding (each printed with a reproducer).

import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { DEFAULT_OPTIONS, DEFAULT_SEED, FuzzEngine, runFuzz, type Finding, type FuzzOptions, type FuzzSummary } from "../fuzz/index.ts";
import { emptyTally } from "../fuzz/engine.ts";
import { REAL_VOCAB_FILE } from "../fuzz/corpus.ts";
import { KNOWN_ISSUES } from "../fuzz/known-issues.ts";
import { vocabDir } from "../fixtures/tokenizer.ts";
import { boolFlag, intFlag, parseFlags, splitArgs, UsageError } from "./args.ts";
import { bold, dim, green, mib, red, table, thousands } from "./format.ts";
import { runMain } from "./main.ts";

const USAGE = `usage: bun run fuzz [--cases N] [--model-cases N] [--seed S] [--real] [--json] [--replay J]

  --cases N        mutated files to try (default ${thousands(DEFAULT_OPTIONS.cases)}: what CI runs, in well under a minute)
  --model-cases N  edited models to try (default: cases / 40, at least ${DEFAULT_OPTIONS.modelCases})
  --seed S         run seed, decimal or 0x-hex (default 0x${DEFAULT_SEED.toString(16)}); a finding replays from seed and case number
  --real           add llama.cpp's ${REAL_VOCAB_FILE} (32,000 tokens) to the corpus, when ../shared/fixtures/real has it
  --json           print the summary as JSON
  --replay J       run case J alone (with the seed and --cases of the run that found it) and print it

A longer run before a release: bun run fuzz --cases 200000 --real --seed $RANDOM`;

const count = intFlag("a number of cases", 1, 100_000_000);
const Flags = z.object({
  cases: count,
  "model-cases": count,
  seed: z
    .string()
    .regex(/^(0x[0-9a-f]{1,8}|\d{1,10})$/i, "must be a 32-bit number, decimal or 0x-hex")
    .transform((s) => Number(s) >>> 0)
    .optional(),
  real: boolFlag,
  json: boolFlag,
  replay: intFlag("a case number", 0, 200_000_000),
  debug: boolFlag,
  help: boolFlag,
});

async function main(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(Flags, splitArgs(argv, ["cases", "model-cases", "seed", "replay"]).flags);
  if (flags.help) return (console.log(USAGE), 0);
  const cases = flags.cases ?? DEFAULT_OPTIONS.cases;
  let options: FuzzOptions = {
    ...DEFAULT_OPTIONS,
    seed: flags.seed ?? DEFAULT_SEED,
    cases,
    modelCases: flags["model-cases"] ?? Math.max(DEFAULT_OPTIONS.modelCases, Math.round(cases / 40)),
    real: flags.real ?? false,
  };
  if (options.real && !existsSync(join(vocabDir(), REAL_VOCAB_FILE))) {
    console.error(dim(`${REAL_VOCAB_FILE} is not in ${vocabDir()}: running without it (set GGUF_VRAM_VOCAB_DIR)`));
    options = { ...options, real: false };
  }
  if (flags.replay !== undefined) return replay(options, flags.replay);
  const tty = process.stderr.isTTY === true && !flags.json;
  const summary = await runFuzz({
    ...options,
    rssGrowthLimitBytes: 512 << 20,
    onProgress: tty ? (done, total) => process.stderr.write(`\r${dim(`${thousands(done)} / ${thousands(total)} cases`)}`) : undefined,
  });
  if (tty) process.stderr.write("\r\x1b[K");
  if (flags.json) console.log(JSON.stringify(summary, null, 2));
  else report(summary);
  return summary.findings.length === 0 ? 0 : 1;
}

/** One case, in this process (a hang hangs here too). */
async function replay(options: FuzzOptions, job: number): Promise<number> {
  const engine = await FuzzEngine.create(options);
  if (job >= engine.jobs) throw new UsageError(`case ${job} is past the last case, ${engine.jobs - 1}; pass the --cases of the run that found it`);
  const tally = emptyTally();
  const finding = await engine.run(job, tally);
  if (finding) {
    printFinding(finding);
    return 1;
  }
  const about = engine.describe(job);
  const outcome = tally.parsed > 0 ? `parsed${tally.parsedModelOk > 0 ? ", a valid model" : ""}` : Object.keys({ ...tally.rejected, ...tally.known, ...tally.model }).join(", ");
  printFinding({ ...about, kind: "case", detail: outcome });
  return 0;
}

function report(s: FuzzSummary): void {
  const t = s.tally;
  const byCount = (r: Record<string, number>) => Object.entries(r).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  console.log(bold(`fuzz: seed 0x${s.seed.toString(16)}, ${thousands(s.cases)} format cases + ${thousands(s.modelCases)} model cases${s.real ? `, with ${REAL_VOCAB_FILE}` : ""}`));
  const rejected = Object.values(t.rejected).reduce((a, b) => a + b, 0);
  console.log(table([
    ["parsed", thousands(t.parsed), dim(`${thousands(t.parsedModelOk)} of them valid models`)],
    ["GgufError", thousands(rejected), ""],
    ...byCount(t.rejected).map(([code, n]) => [`  ${code}`, thousands(n), ""]),
  ], [1]));
  console.log(bold("model cases"));
  console.log(table(byCount(t.model).map(([k, n]) => [k, thousands(n)]), [1]));
  for (const [id, n] of byCount(t.known)) {
    const issue = KNOWN_ISSUES.find((k) => k.id === id);
    console.log(dim(`known issue ${id}: ${thousands(n)} cases (checkModel not run) — ${issue?.summary ?? ""}`));
  }
  const c = s.counts;
  const line = `crashes ${c.crash}, hangs ${c.hang}, huge allocations ${c["huge-allocation"]}, memory ${c.memory}, wrong verdicts ${c["wrong-verdict"]}`;
  console.log(s.findings.length === 0 ? green(line) : red(line));
  console.log(table([
    ["slowest case", `${t.maxCaseMs.toFixed(1)} ms`, dim(`case ${t.slowestJob}`)],
    ["max RSS", mib(s.maxRssBytes), dim(`start ${mib(s.startRssBytes)}`)],
    ["largest case", mib(t.maxCaseGrowthBytes), dim(`of new committed memory, case ${t.maxGrowthJob}`)],
    ["time", `${s.seconds.toFixed(1)} s`, dim(`${((s.cases + s.modelCases) / s.seconds).toFixed(0)} cases/s`)],
  ]));
  // One report per kind of finding; the cases that repeat it are listed after.
  const groups = new Map<string, Finding[]>();
  for (const f of s.findings) {
    const key = `${f.kind} ${f.detail.replace(/\d+/g, "N")}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  for (const [first, ...more] of groups.values()) {
    printFinding(first!);
    if (more.length > 0) console.log(dim(`  and ${more.length} more like it: cases ${more.slice(0, 10).map((f) => f.job).join(", ")}${more.length > 10 ? ", …" : ""}`));
  }
}

function printFinding(f: Finding | (Omit<Finding, "kind"> & { kind: "case" })): void {
  console.log(`\n${f.kind === "case" ? "" : `${red(f.kind)}: `}${f.level} case ${f.job} (${f.seedFile}${f.initialWindow === undefined ? "" : `, initialWindow ${f.initialWindow}`}): ${f.detail}`);
  for (const step of f.steps) console.log(dim(`  ${step}`));
  if (f.stack) console.log(f.stack);
  if (f.reproducer) {
    const lines = f.reproducer.split("\n");
    console.log(dim(`input (${lines.length > 40 ? `first 40 of ${lines.length} lines; --json has it all` : "hex"}):`));
    console.log(lines.slice(0, 40).join("\n"));
  }
}

if (import.meta.main) runMain(main, { command: "bun run fuzz" });
