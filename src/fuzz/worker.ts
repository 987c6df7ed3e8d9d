// The fuzz loop, in a worker so the runner (run.ts) can stop a case that hangs.
// It reports counts and findings in batches; a batch is the unit the runner
// keeps, so after a stop the worker is restarted at the last batch it sent.

import { emptyTally, FuzzEngine, type Finding } from "./engine.ts";
import { PROGRESS, STATE, type StartMessage, type WorkerMessage } from "./protocol.ts";

declare const self: Worker;

const BATCH = 250;

self.onmessage = async (e: MessageEvent<StartMessage>) => {
  const { options, from, skip, progress } = e.data;
  const p = new Int32Array(progress);
  const engine = await FuzzEngine.create(options);
  engine.onMinimizing = (active) => Atomics.store(p, PROGRESS.state, active ? STATE.minimizing : STATE.running);
  const post = (m: WorkerMessage) => self.postMessage(m);
  post({ type: "ready" });
  let tally = emptyTally();
  let findings: Finding[] = [];
  for (let j = from; j < engine.jobs; j++) {
    if (!skip.includes(j)) {
      Atomics.store(p, PROGRESS.job, j);
      Atomics.store(p, PROGRESS.state, STATE.running);
      Atomics.add(p, PROGRESS.heartbeat, 1);
      const finding = await engine.run(j, tally);
      Atomics.store(p, PROGRESS.state, STATE.idle);
      if (finding) findings.push(finding);
    }
    if ((j + 1) % BATCH === 0 || j + 1 === engine.jobs) {
      post({ type: "batch", tally, findings, next: j + 1 });
      tally = emptyTally();
      findings = [];
    }
  }
  post({ type: "done" });
};
