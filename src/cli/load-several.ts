// The interactive load's question for several GPUs: which of them share the
// model (a split by layers) or each get a copy of it (replicas), with each
// GPU's free memory and whether the model fits on the ones chosen.

import type { Readable, Writable } from "node:stream";
import { isCancel, log, multiselect } from "@clack/prompts";
import type { DeviceInfo } from "../cuda/index.ts";
import { humanBytes } from "./format.ts";
import { fitsLine, gpusText, type Planned } from "./load-report.ts";
import { planFor, type Target } from "./load-steps.ts";

export type Ui = { readonly input: Readable; readonly output: Writable };

/**
 * Asks for two or more GPUs (all of them ticked to start with) until that
 * many are chosen, then says whether the model fits on them: for a split, the
 * arenas of the split by free VRAM against the GPUs' free memory together (and
 * each part against its GPU); for replicas, a whole copy against each GPU.
 * Returns the target, or clack's cancel symbol (Ctrl-C, Escape).
 */
export async function chooseSeveral(kind: "split" | "replicas", planned: Planned, devices: readonly DeviceInfo[], ui: Ui): Promise<Target | symbol> {
  const arena = planned.plan.arenaBytes; // the whole model on one GPU: what each replica needs
  let initialValues = devices.map((d) => d.index);
  for (;;) {
    const chosen = await multiselect({
      ...ui,
      message: kind === "split" ? `Which GPUs share the model? (it needs about ${humanBytes(arena)} in all)` : `Which GPUs get a copy? (each needs ${humanBytes(arena)})`,
      options: devices.map((d) => ({ value: d.index, label: `GPU ${d.index}: ${d.name}`, hint: kind === "replicas" ? fitsLine(d, arena).split(" — ")[1] : `${humanBytes(d.freeBytes)} free of ${humanBytes(d.totalBytes)}` })),
      initialValues,
      required: true,
    });
    if (isCancel(chosen)) return chosen;
    const indices = [...chosen].sort((a, b) => a - b);
    if (indices.length < 2) {
      log.warn(`${kind === "split" ? "A split" : "Replicas"} need two or more GPUs: tick them with Space (for one GPU, choose it in the question before)`, ui);
      initialValues = indices;
      continue;
    }
    const target: Target = { kind, devices: indices };
    const { ok, text } = fitOn(planFor(planned, target, devices), devices);
    (ok ? log.success : log.warn)(text, ui);
    return target;
  }
}

/** Whether the plan fits on its GPUs, in one line. */
function fitOn(p: Planned, devices: readonly DeviceInfo[]): { ok: boolean; text: string } {
  const used = p.plan.devices.map((part) => ({ part, d: devices[part.device]! }));
  const parts = used.every(({ part, d }) => part.arenaBytes <= d.freeBytes);
  const gpus = gpusText(used.map(({ d }) => d.index));
  if (p.plan.kind === "replicas") {
    return { ok: parts, text: `${gpus}: ${parts ? "a copy fits on each" : `a copy (${humanBytes(used[0]!.part.arenaBytes)}) does not fit on ${gpusText(used.filter(({ part, d }) => part.arenaBytes > d.freeBytes).map(({ d }) => d.index))}`}` };
  }
  const free = used.reduce((n, { d }) => n + d.freeBytes, 0);
  const ok = parts && p.plan.arenaBytes <= free;
  return { ok, text: `${gpus}: ${humanBytes(free)} free together for ${humanBytes(p.plan.arenaBytes)} · ${ok ? "fits" : "does not fit"}` };
}
