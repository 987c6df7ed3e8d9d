// Findings the fuzzer has reported and the project has not fixed yet. A case
// that hits one is counted under its id instead of failing the run, so the
// fixed-seed run in CI stays green while the issue is open; the regression
// test of each (test/fuzz-regressions.test.ts) is marked failing until the fix
// lands. Delete the entry with the fix.

import type { GgufFile } from "../gguf/index.ts";

export interface KnownIssue {
  readonly id: string;
  readonly summary: string;
  /** True when running checkModel on this file would hit the issue. */
  readonly applies: (file: GgufFile) => boolean;
}

/** Empty: the one finding so far (checkModel trusting block_count) is fixed in src/arch/check.ts. */
export const KNOWN_ISSUES: readonly KnownIssue[] = [];

export function knownIssueOf(file: GgufFile): KnownIssue | undefined {
  return KNOWN_ISSUES.find((k) => k.applies(file));
}
