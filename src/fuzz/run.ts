// Runs a fuzz campaign: the jobs in a worker, watched from here. A case that
// runs past the hang limit, or a process whose memory grows past the bound,
// gets the worker stopped; the case is reported and skipped, and a new worker
// resumes at the last batch the old one sent.

import { emptyTally, addTally, FuzzEngine, type Finding, type FindingKind, type FuzzOptions, type Tally } from "./engine.ts";
import { PROGRESS, STATE, type StartMessage, type WorkerMessage } from "./protocol.ts";

export interface RunOptions extends FuzzOptions {
  /** The process's resident memory may grow this much over its size once the corpus is built. */
  readonly rssGrowthLimitBytes: number;
  /** Called after each batch with jobs done and jobs in all. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface FuzzSummary {
  readonly seed: number;
  readonly cases: number;
  readonly modelCases: number;
  readonly real: boolean;
  readonly tally: Tally;
  readonly findings: readonly Finding[];
  readonly counts: Readonly<Record<FindingKind, number>>;
  readonly startRssBytes: number;
  readonly maxRssBytes: number;
  readonly seconds: number;
  readonly workerRestarts: number;
}

const POLL_MS = 50;
/** A minimization may take seconds; only this long is a hang. */
const MINIMIZE_KILL_MS = 30_000;

type WorkerEnd = { readonly kind: "done" } | { readonly kind: "stopped"; readonly job: number; readonly finding: FindingKind; readonly detail: string };

export async function runFuzz(options: RunOptions): Promise<FuzzSummary> {
  const { onProgress, rssGrowthLimitBytes, ...fuzz } = options;
  const total = fuzz.cases + fuzz.modelCases;
  const tally = emptyTally();
  const findings: Finding[] = [];
  const skip: number[] = [];
  const started = performance.now();
  let startRss = 0;
  let maxRss = 0;
  let from = 0;
  let restarts = -1;
  let describer: FuzzEngine | null = null;

  while (from < total) {
    restarts++;
    const end = await new Promise<WorkerEnd>((resolve, reject) => {
      const progress = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
      const p = new Int32Array(progress);
      const worker = new Worker(new URL("./worker.ts", import.meta.url).href);
      let beat = -1;
      let beatAt = performance.now();
      let ready = false;
      let stopped = false;
      const stop = (result: WorkerEnd | Error) => {
        if (stopped) return;
        stopped = true;
        clearInterval(poll);
        worker.terminate();
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      const poll = setInterval(() => {
        if (!ready) return;
        const rss = process.memoryUsage.rss();
        maxRss = Math.max(maxRss, rss);
        const job = Atomics.load(p, PROGRESS.job);
        const state = Atomics.load(p, PROGRESS.state);
        const now = performance.now();
        if (Atomics.load(p, PROGRESS.heartbeat) !== beat) {
          beat = Atomics.load(p, PROGRESS.heartbeat);
          beatAt = now;
        }
        const limit = state === STATE.minimizing ? MINIMIZE_KILL_MS : fuzz.hangMs + 1000;
        if (state !== STATE.idle && now - beatAt > limit) {
          stop({ kind: "stopped", job, finding: "hang", detail: `${state === STATE.minimizing ? "minimizing its crash " : ""}ran over ${limit} ms; the worker was stopped` });
        } else if (rss > startRss + rssGrowthLimitBytes) {
          stop({ kind: "stopped", job, finding: "memory", detail: `resident memory reached ${(rss / 2 ** 20).toFixed(0)} MiB, ${((rss - startRss) / 2 ** 20).toFixed(0)} MiB over the start; the worker was stopped` });
        }
      }, POLL_MS);
      worker.onmessage = (e: MessageEvent<WorkerMessage>) => {
        const m = e.data;
        if (stopped) return;
        if (m.type === "ready") {
          ready = true;
          if (startRss === 0) startRss = maxRss = process.memoryUsage.rss();
        } else if (m.type === "batch") {
          addTally(tally, m.tally);
          findings.push(...m.findings);
          from = m.next;
          onProgress?.(from, total);
        } else stop({ kind: "done" });
      };
      worker.onerror = (e) => stop(new Error(`the fuzz worker failed: ${e.message}`));
      // A worker that ends on its own (exit, a crash of its thread) never says so: its close does.
      worker.addEventListener("close", (e) => stop(new Error(`the fuzz worker ended unexpectedly (exit code ${(e as CloseEvent).code})`)));
      worker.postMessage({ options: fuzz, from, skip, progress } satisfies StartMessage);
    });
    if (end.kind === "stopped") {
      describer ??= await FuzzEngine.create(fuzz);
      findings.push({ ...describer.describe(end.job), kind: end.finding, detail: end.detail });
      skip.push(end.job);
    }
  }

  const counts: Record<FindingKind, number> = { crash: 0, hang: 0, "huge-allocation": 0, memory: 0, "wrong-verdict": 0 };
  for (const f of findings) counts[f.kind]++;
  return {
    seed: fuzz.seed, cases: fuzz.cases, modelCases: fuzz.modelCases, real: fuzz.real, tally, findings, counts,
    startRssBytes: startRss, maxRssBytes: maxRss, seconds: (performance.now() - started) / 1000, workerRestarts: restarts,
  };
}
