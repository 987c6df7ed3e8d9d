// Shrinks a crashing input while it still crashes the same way: the data
// section first, then chunks of the header from halves down to single bytes.
// Bounded in attempts and time; what it returns always still crashes.

import type { FuzzInput } from "./mutate.ts";

export interface MinimizeBudget {
  readonly attempts: number;
  readonly ms: number;
}

export async function minimize(input: FuzzInput, stillFails: (candidate: FuzzInput) => Promise<boolean>, budget: MinimizeBudget = { attempts: 3000, ms: 5000 }): Promise<FuzzInput> {
  const deadline = performance.now() + budget.ms;
  let attempts = 0;
  const tryCandidate = async (c: FuzzInput) => {
    attempts++;
    return stillFails(c);
  };
  const spent = () => attempts >= budget.attempts || performance.now() > deadline;

  let best = input;
  // The data section: none at all, else the least that keeps the failure.
  if (best.dataBytes > 0) {
    if (await tryCandidate({ head: best.head, dataBytes: 0 })) best = { head: best.head, dataBytes: 0 };
    else {
      let lo = 0;
      let hi = best.dataBytes;
      while (hi - lo > 1 && !spent()) {
        const mid = Math.floor((lo + hi) / 2);
        if (await tryCandidate({ head: best.head, dataBytes: mid })) hi = mid;
        else lo = mid;
      }
      best = { head: best.head, dataBytes: hi };
    }
  }
  // The header: drop chunks, halving the chunk size when nothing more can go.
  for (let chunk = Math.max(1, Math.floor(best.head.length / 2)); chunk >= 1 && !spent(); chunk = Math.floor(chunk / 2)) {
    for (let at = 0; at < best.head.length && !spent(); ) {
      const head = new Uint8Array(best.head.length - Math.min(chunk, best.head.length - at));
      head.set(best.head.subarray(0, at));
      head.set(best.head.subarray(at + chunk), at);
      const candidate = { head, dataBytes: best.dataBytes };
      if (await tryCandidate(candidate)) best = candidate;
      else at += chunk;
    }
  }
  return best;
}

/** An input as hex, 32 bytes a line, with its data section as a count of zeros. */
export function hexDump(input: FuzzInput): string {
  const lines: string[] = [];
  for (let i = 0; i < input.head.length; i += 32) {
    lines.push([...input.head.subarray(i, i + 32)].map((b) => b.toString(16).padStart(2, "0")).join(""));
  }
  if (input.dataBytes > 0) lines.push(`+ ${input.dataBytes} zero bytes`);
  return lines.join("\n");
}

/** The inverse of hexDump (for regression tests that paste a reproducer). */
export function fromHex(dump: string): FuzzInput {
  let dataBytes = 0;
  const hex: string[] = [];
  for (const line of dump.trim().split("\n")) {
    const zeros = /^\+ (\d+) zero bytes$/.exec(line.trim());
    if (zeros) dataBytes = Number(zeros[1]);
    else hex.push(line.trim());
  }
  const s = hex.join("");
  const head = new Uint8Array(s.length / 2);
  for (let i = 0; i < head.length; i++) head[i] = parseInt(s.slice(i * 2, i * 2 + 2), 16);
  return { head, dataBytes };
}
