// The flags of `bun run serve` that take sizes and durations: --budget 40G or
// 0=40G,1=70G, --keep-alive 10m (or -1: as long as the server runs).

import { z } from "zod";

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "40G", "512M", "1.5g", "123456" → bytes; null when it is not a size. */
export function parseSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) return null;
  const bytes = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  return Number.isSafeInteger(Math.round(bytes)) && bytes > 0 ? Math.round(bytes) : null;
}

/** "10m", "30s", "1h", "500ms", "0", "-1" → milliseconds (-1: forever); null when it is not a duration. */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (t === "-1" || t === "forever") return -1;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(t);
  if (!m) return null;
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h" | "d"];
  return Math.round(Number(m[1]) * scale);
}

export const durationFlag = z
  .string({ error: "takes a duration: e.g. 30s, 10m, 2h, 0 (unload at the last detach) or -1 (keep while the server runs)" })
  .transform((s, ctx) => {
    const ms = parseDuration(s);
    if (ms === null) {
      ctx.addIssue({ code: "custom", message: "takes a duration: e.g. 30s, 10m, 2h, 0 (unload at the last detach) or -1 (keep while the server runs)" });
      return z.NEVER;
    }
    return ms;
  })
  .optional();

/** "40G" (every device) or "0=40G,1=70G" (by device). */
export const budgetFlag = z
  .string({ error: "takes a size for every GPU (40G) or one per GPU (0=40G,1=70G)" })
  .transform((s, ctx): number | Map<number, number> => {
    const fail = () => {
      ctx.addIssue({ code: "custom", message: "takes a size for every GPU (40G) or one per GPU (0=40G,1=70G)" });
      return z.NEVER;
    };
    if (!s.includes("=")) return parseSize(s) ?? fail();
    const out = new Map<number, number>();
    for (const item of s.split(",")) {
      const [device, size] = item.split("=").map((x) => x.trim());
      const bytes = parseSize(size ?? "");
      if (!/^\d+$/.test(device ?? "") || bytes === null || out.has(Number(device))) return fail();
      out.set(Number(device), bytes);
    }
    return out;
  })
  .optional();

/** 300000 → "5m", 90000 → "1.5m", -1 → "while the server runs". */
export function durationText(ms: number): string {
  if (ms < 0) return "while the server runs";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(1)} min`;
  return `${+(ms / 3_600_000).toFixed(1)} h`;
}
