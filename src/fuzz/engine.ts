// One fuzz job at a time, in process: job j < cases is format case j (a seed
// file, its mutations, an initial read window, and for one case in eight the
// tight bounds), the rest are model cases. Every job is a pure function of
// (run seed, j), so any finding replays alone.

import { memoryUsage } from "bun:jsc";
import { buildCorpus, type SeedFile } from "./corpus.ts";
import { hexDump, minimize } from "./minimize.ts";
import { editModel, modelCorpus, type ModelCase, type ModelSeed } from "./model-fuzz.ts";
import { judgeModel } from "./model-oracle.ts";
import { mutate, type FuzzInput } from "./mutate.ts";
import type { HeaderLimits } from "../gguf/index.ts";
import { crashSignature, judge, TIGHT_LIMITS, WINDOWS } from "./oracle.ts";
import { Prng } from "./prng.ts";

export interface FuzzOptions {
  readonly seed: number;
  /** Format-level cases (mutated files). */
  readonly cases: number;
  /** Model-level cases (edited fixture models). */
  readonly modelCases: number;
  /** Add the real vocab file to the corpus. */
  readonly real: boolean;
  /** A case that takes longer is a hang. */
  readonly hangMs: number;
  /** A case that raises the process's peak committed memory by more is a huge allocation. */
  readonly allocationLimitBytes: number;
}

export const DEFAULT_SEED = 0x6775_6666; // "fugg"
export const DEFAULT_OPTIONS: FuzzOptions = { seed: DEFAULT_SEED, cases: 20_000, modelCases: 500, real: false, hangMs: 1000, allocationLimitBytes: 256 << 20 };

export type FindingKind = "crash" | "hang" | "huge-allocation" | "memory" | "wrong-verdict";

export interface Finding {
  readonly kind: FindingKind;
  readonly job: number;
  readonly level: "format" | "model";
  readonly seedFile: string;
  readonly steps: readonly string[];
  readonly initialWindow?: number;
  /** Set when the case read under TIGHT_LIMITS. */
  readonly limits?: Partial<HeaderLimits>;
  /** What went wrong: the error, the time, the bytes. */
  readonly detail: string;
  readonly stack?: string;
  /** The input as hexDump() writes it, minimized for crashes. */
  readonly reproducer?: string;
}

/** Counts from a stretch of jobs; runs add them up. */
export interface Tally {
  formatCases: number;
  parsed: number;
  /** Parsed files checkModel found to be valid models. */
  parsedModelOk: number;
  rejected: Record<string, number>;
  modelCases: number;
  /** Model-level outcomes: ok, not-ok, rejected:<code>. */
  model: Record<string, number>;
  known: Record<string, number>;
  maxCaseMs: number;
  slowestJob: number;
  peakCommitBytes: number;
  /** The most one case raised the peak committed memory, and which case. */
  maxCaseGrowthBytes: number;
  maxGrowthJob: number;
}

export function emptyTally(): Tally {
  return { formatCases: 0, parsed: 0, parsedModelOk: 0, rejected: {}, modelCases: 0, model: {}, known: {}, maxCaseMs: 0, slowestJob: -1, peakCommitBytes: 0, maxCaseGrowthBytes: 0, maxGrowthJob: -1 };
}

const bump = (r: Record<string, number>, k: string) => void (r[k] = (r[k] ?? 0) + 1);

export function addTally(into: Tally, t: Tally): void {
  into.formatCases += t.formatCases;
  into.parsed += t.parsed;
  into.parsedModelOk += t.parsedModelOk;
  into.modelCases += t.modelCases;
  for (const [k, n] of Object.entries(t.rejected)) into.rejected[k] = (into.rejected[k] ?? 0) + n;
  for (const [k, n] of Object.entries(t.model)) into.model[k] = (into.model[k] ?? 0) + n;
  for (const [k, n] of Object.entries(t.known)) into.known[k] = (into.known[k] ?? 0) + n;
  if (t.maxCaseMs > into.maxCaseMs) {
    into.maxCaseMs = t.maxCaseMs;
    into.slowestJob = t.slowestJob;
  }
  into.peakCommitBytes = Math.max(into.peakCommitBytes, t.peakCommitBytes);
  if (t.maxCaseGrowthBytes > into.maxCaseGrowthBytes) {
    into.maxCaseGrowthBytes = t.maxCaseGrowthBytes;
    into.maxGrowthJob = t.maxGrowthJob;
  }
}

/** What a format case is made of, before it runs. */
export interface FormatCase {
  readonly seedFile: string;
  readonly input: FuzzInput;
  readonly steps: readonly string[];
  readonly initialWindow: number | undefined;
  readonly limits: Partial<HeaderLimits> | undefined;
}

/** Which format cases read under TIGHT_LIMITS: by case number, so a case's mutations are what they were without them. */
const tight = (index: number) => index % 8 === 7;

/** How a format case was read, for its finding. */
function reading(c: FormatCase): Pick<Finding, "initialWindow" | "limits"> {
  return { ...(c.initialWindow === undefined ? {} : { initialWindow: c.initialWindow }), ...(c.limits ? { limits: c.limits } : {}) };
}

export class FuzzEngine {
  private lastPeak = memoryUsage().peakCommit;
  /** Told when a crash's minimization starts and ends (it may take seconds: not a hang). */
  onMinimizing: ((active: boolean) => void) | null = null;
  private readonly minimized = new Set<string>();

  private constructor(
    readonly options: FuzzOptions,
    readonly corpus: readonly SeedFile[],
    readonly models: readonly ModelSeed[],
  ) {}

  static async create(options: FuzzOptions): Promise<FuzzEngine> {
    return new FuzzEngine(options, await buildCorpus({ real: options.real }), await modelCorpus());
  }

  get jobs(): number {
    return this.options.cases + this.options.modelCases;
  }

  formatCase(index: number): FormatCase {
    const rng = Prng.forCase(this.options.seed, index);
    const seed = this.corpus[rng.weighted(this.corpus.map((s) => s.weight))]!;
    const { input, steps } = mutate(rng, seed);
    const w = rng.below(WINDOWS.length + 2);
    // Besides the fixed windows: the default, and a cut anywhere in the header (a string array resumes there).
    const initialWindow = w < WINDOWS.length ? WINDOWS[w] : w === WINDOWS.length ? undefined : 1 + rng.below(Math.max(1, input.head.length));
    return { seedFile: seed.name, input, steps, initialWindow, limits: tight(index) ? TIGHT_LIMITS : undefined };
  }

  modelCase(j: number): ModelCase {
    return editModel(Prng.forCase(this.options.seed, j - this.options.cases, 1), this.models);
  }

  /** What job `j` feeds the reader, for a report about it (a hang the runner had to stop). */
  describe(j: number): Omit<Finding, "kind" | "detail"> {
    if (j < this.options.cases) {
      const c = this.formatCase(j);
      return { job: j, level: "format", seedFile: c.seedFile, steps: c.steps, ...reading(c), reproducer: hexDump(c.input) };
    }
    const c = this.modelCase(j);
    return { job: j, level: "model", seedFile: c.seed, steps: c.edits, reproducer: hexDump({ head: c.bytes, dataBytes: c.dataBytes }) };
  }

  /** Runs job `j`, adds its outcome to `tally`; returns a finding when it broke a rule. */
  async run(j: number, tally: Tally): Promise<Finding | null> {
    return j < this.options.cases ? this.runFormat(j, tally) : this.runModel(j, tally);
  }

  private async runFormat(index: number, tally: Tally): Promise<Finding | null> {
    const c = this.formatCase(index);
    const t = performance.now();
    const verdict = await judge(c.input, c.initialWindow, c.limits);
    const ms = performance.now() - t;
    tally.formatCases++;
    if (verdict.kind === "parsed") {
      tally.parsed++;
      if (verdict.check.ok) tally.parsedModelOk++;
    } else if (verdict.kind === "rejected") bump(tally.rejected, verdict.code);
    else if (verdict.kind === "known") bump(tally.known, verdict.issue);
    const base = { job: index, level: "format" as const, seedFile: c.seedFile, steps: c.steps, ...reading(c) };
    const finding = this.timeAndMemory(index, ms, tally, base, c.input);
    if (verdict.kind === "crash") {
      // Minimize the first crash of each kind; the others keep their input as it was.
      const signature = crashSignature(verdict)!;
      const first = !this.minimized.has(signature);
      this.minimized.add(signature);
      const input = first ? await this.minimizeCrash(c, signature) : c.input;
      return { ...base, kind: "crash", detail: `${verdict.stage}: ${verdict.error}`, stack: verdict.stack, reproducer: hexDump(input) };
    }
    return finding;
  }

  private async runModel(j: number, tally: Tally): Promise<Finding | null> {
    const c = this.modelCase(j);
    const t = performance.now();
    const verdict = await judgeModel(c);
    const ms = performance.now() - t;
    tally.modelCases++;
    bump(tally.model, verdict.kind === "rejected" ? `rejected:${verdict.code}` : verdict.kind);
    if (verdict.kind === "known") bump(tally.known, verdict.issue);
    const input = { head: c.bytes, dataBytes: c.dataBytes };
    const base = { job: j, level: "model" as const, seedFile: c.seed, steps: c.edits };
    const finding = this.timeAndMemory(j, ms, tally, base, input);
    if (verdict.kind === "crash") return { ...base, kind: "crash", detail: `${verdict.stage}: ${verdict.error}`, stack: verdict.stack, reproducer: hexDump(input) };
    if (verdict.kind === "wrong-verdict") return { ...base, kind: "wrong-verdict", detail: verdict.problem };
    return finding;
  }

  private timeAndMemory(j: number, ms: number, tally: Tally, base: Omit<Finding, "kind" | "detail">, input: FuzzInput): Finding | null {
    if (ms > tally.maxCaseMs) {
      tally.maxCaseMs = ms;
      tally.slowestJob = j;
    }
    const peak = memoryUsage().peakCommit;
    const grew = peak - this.lastPeak;
    this.lastPeak = peak;
    tally.peakCommitBytes = Math.max(tally.peakCommitBytes, peak);
    if (grew > tally.maxCaseGrowthBytes) {
      tally.maxCaseGrowthBytes = grew;
      tally.maxGrowthJob = j;
    }
    if (ms > this.options.hangMs) return { ...base, kind: "hang", detail: `took ${ms.toFixed(0)} ms`, reproducer: hexDump(input) };
    if (grew > this.options.allocationLimitBytes) return { ...base, kind: "huge-allocation", detail: `peak committed memory grew by ${(grew / 2 ** 20).toFixed(0)} MiB`, reproducer: hexDump(input) };
    return null;
  }

  private async minimizeCrash(c: FormatCase, signature: string): Promise<FuzzInput> {
    this.onMinimizing?.(true);
    try {
      return await minimize(c.input, async (candidate) => crashSignature(await judge(candidate, c.initialWindow, c.limits)) === signature);
    } finally {
      this.onMinimizing?.(false);
    }
  }
}
