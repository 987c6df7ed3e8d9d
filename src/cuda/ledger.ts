// The VRAM ledger: where every tensor sits in the arena and what it costs.
// It is written once, from the plan, when the arena is allocated; its total is
// the arena's size, so the ledger and the allocation cannot disagree.

export interface LedgerEntry {
  readonly name: string;
  /** The CUDA device whose arena it is in (a model on several GPUs has one arena each). */
  readonly device?: number;
  /** Offset in the arena (a multiple of the arena alignment). */
  readonly offset: number;
  /** The tensor's bytes; 0 for an alias. */
  readonly bytes: number;
  /** Bytes between this tensor's end and the next tensor (or the arena end). */
  readonly padding: number;
  /** For a tied LM head: the tensor whose memory this one shares. */
  readonly aliasOf?: string;
  /** For a tied LM head on another GPU than token_embd: the tensor whose bytes it copies. */
  readonly copyOf?: string;
}

export class VramLedger {
  readonly entries: readonly LedgerEntry[];
  private readonly byName: ReadonlyMap<string, LedgerEntry>;

  constructor(
    entries: readonly LedgerEntry[],
    /** The arena's size: data plus padding. */
    readonly totalBytes: number,
    readonly alignment: number,
  ) {
    this.entries = entries;
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  get(name: string): LedgerEntry | undefined {
    return this.byName.get(name);
  }

  /** Bytes of tensor data (aliases count once). */
  get dataBytes(): number {
    return this.entries.reduce((n, e) => n + e.bytes, 0);
  }

  get paddingBytes(): number {
    return this.totalBytes - this.dataBytes;
  }
}
