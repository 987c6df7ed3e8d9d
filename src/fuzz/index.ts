// The fuzzer: mutated GGUF files against the reader, edited models against the registry.
//
// CI runs it through `bun test` (test/fuzz.test.ts): the fixed seed, 20,000
// mutated files and 500 edited models. Before a release, or after a change to
// src/gguf or src/arch, run a longer campaign with a fresh seed:
//
//   bun run fuzz --cases 200000 --real --seed $RANDOM
//
// A finding prints its case number (it replays from seed and number) and its
// input in hex; make it a named case in test/fuzz-regressions.test.ts.
export { runFuzz, type FuzzSummary, type RunOptions } from "./run.ts";
export { FuzzEngine, DEFAULT_OPTIONS, DEFAULT_SEED, type Finding, type FindingKind, type FuzzOptions, type Tally } from "./engine.ts";
export { buildCorpus, REAL_VOCAB_FILE, type SeedFile } from "./corpus.ts";
export { judge, judgeBlob, type Verdict } from "./oracle.ts";
export { fromHex, hexDump, minimize } from "./minimize.ts";
export { KNOWN_ISSUES } from "./known-issues.ts";
export { Prng } from "./prng.ts";
