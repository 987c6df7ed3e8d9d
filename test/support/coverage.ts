// Exact coverage of an arena by the upload's spans: shared by the plan tests of
// one device, a split and replicas.

import { expect } from "bun:test";
import { uploadSpans, type PlannedTensor, type UploadSpan } from "../../src/load/index.ts";

/**
 * Replays the spans' copies and checks exact coverage: the copies tile every
 * tensor's arena range with no overlap and no hole and write nothing else, each
 * copy carries the file bytes of the tensor it lands in, and the reads fit their
 * slot and never overlap one another.
 */
export function expectExactCoverage(part: { readonly tensors: readonly PlannedTensor[] }, slotBytes: number, spans: readonly UploadSpan[] = uploadSpans(part, slotBytes)): readonly UploadSpan[] {
  const copies: { dst: number; n: number; file: number }[] = [];
  for (const s of spans) {
    expect(s.bytes).toBeLessThanOrEqual(slotBytes);
    for (let i = 0; i < s.pieces.length; i += 3) {
      const [src, dst, n] = [s.pieces[i]!, s.pieces[i + 1]!, s.pieces[i + 2]!];
      expect(n).toBeGreaterThan(0);
      expect(src + n).toBeLessThanOrEqual(s.bytes);
      copies.push({ dst, n, file: s.fileOffset + src });
    }
  }
  copies.sort((a, b) => a.dst - b.dst);
  const tensors = part.tensors.filter((t) => !t.aliasOf && t.bytes > 0).sort((a, b) => a.offset - b.offset);
  let c = 0;
  for (const t of tensors) {
    // The copies into this tensor, in arena order, must run from its first byte to its last, end to end.
    let at = t.offset;
    for (; c < copies.length && copies[c]!.dst < t.offset + t.bytes; c++) {
      const copy = copies[c]!;
      expect([t.name, copy.dst]).toEqual([t.name, at]); // no hole, no overlap
      expect([t.name, copy.file - t.fileOffset]).toEqual([t.name, copy.dst - t.offset]); // the right bytes
      at += copy.n;
    }
    expect([t.name, at]).toEqual([t.name, t.offset + t.bytes]);
  }
  expect(c).toBe(copies.length); // nothing written outside the tensors
  const reads = spans.map((s) => [s.fileOffset, s.fileOffset + s.bytes] as const).sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < reads.length; i++) expect(reads[i]![0]).toBeGreaterThanOrEqual(reads[i - 1]![1]);
  return spans;
}
