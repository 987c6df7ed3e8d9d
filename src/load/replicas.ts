// Replicas: the same model on several GPUs, the file read once. Each device
// uploads a share of the spans over its own PCIe link (every link busy at once),
// then every device copies its share into the others' arenas peer to peer
// (NVLink on the multi-GPU hosts here). Replicas are laid out identically, so a
// share is one arena range on every device. Where some pair of devices cannot
// reach each other directly, the host route is taken instead: every device
// uploads the whole file itself (read from the page cache once per device).

import { enablePeerAccess, PeerCopy, type Arena } from "../cuda/index.ts";
import type { UploadSpan } from "./plan.ts";
import type { LoadStop } from "./stop.ts";

/** How replicas get their bytes: peer-to-peer exchange of shares, or every device from the host. */
export type ReplicaRoute = "peer" | "host";

/** "auto": peer when every pair of devices can reach each other, else host. */
export function chooseRoute(devices: readonly number[], wanted: ReplicaRoute | "auto" = "auto"): ReplicaRoute {
  if (wanted === "host" || devices.length < 2) return "host";
  // Enabling is idempotent and process-wide; do every pair, so a forced "peer" is fast where it can be.
  let all = true;
  for (let i = 0; i < devices.length; i++) for (let j = i + 1; j < devices.length; j++) all = enablePeerAccess(devices[i]!, devices[j]!) && all;
  return all || wanted === "peer" ? "peer" : "host";
}

/** The spans cut into `n` contiguous shares of about equal bytes (some may be empty). */
export function shareSpans(spans: readonly UploadSpan[], n: number): UploadSpan[][] {
  const total = spans.reduce((b, s) => b + s.bytes, 0);
  const shares: UploadSpan[][] = Array.from({ length: n }, () => []);
  let done = 0;
  for (const s of spans) {
    // The share whose byte range holds this span's middle.
    const share = Math.min(n - 1, Math.floor(((done + s.bytes / 2) / total) * n));
    shares[share]!.push(s);
    done += s.bytes;
  }
  return shares;
}

/** The arena range a share's copies write: from its first piece to its last (padding between included). */
export function shareRange(share: readonly UploadSpan[]): { offset: number; bytes: number } {
  let start = Infinity;
  let end = 0;
  for (const s of share) {
    for (let i = 0; i < s.pieces.length; i += 3) {
      start = Math.min(start, s.pieces[i + 1]!);
      end = Math.max(end, s.pieces[i + 1]! + s.pieces[i + 2]!);
    }
  }
  return start === Infinity ? { offset: 0, bytes: 0 } : { offset: start, bytes: end - start };
}

/**
 * Copies range d of arenas[d] into every other arena, all pairs at once, and
 * resolves when every copy is done. The JS thread polls; it never blocks on a
 * copy. On a failure, or when `stop` stops the load, every copy still in flight
 * is waited for before it rejects, so the arenas may be freed at once.
 */
export async function exchangeShares(arenas: readonly Arena[], ranges: readonly { offset: number; bytes: number }[], stop: LoadStop, onCopied?: (received: readonly number[]) => void): Promise<number> {
  const copies: { copy: PeerCopy; to: number }[] = [];
  const received = arenas.map(() => 0);
  let moved = 0;
  try {
    arenas.forEach((src, d) => {
      const r = ranges[d]!;
      if (r.bytes === 0) return;
      arenas.forEach((dst, e) => e !== d && copies.push({ copy: PeerCopy.start(dst, src, r.offset, r.bytes), to: e }));
    });
    let pending = copies;
    while (pending.length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      stop.check();
      pending = pending.filter(({ copy, to }) => {
        if (!copy.done) return true;
        moved += copy.bytes;
        received[to]! += copy.bytes;
        onCopied?.(received);
        copy.close();
        return false;
      });
    }
    return moved;
  } finally {
    // Only after a failure is any copy left: wait for each (its own error would hide the first).
    for (const { copy } of copies) {
      try {
        copy.close();
      } catch {
        // the failure being thrown is the one to report
      }
    }
  }
}
