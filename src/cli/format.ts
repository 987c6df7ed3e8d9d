// Numbers and tables for terminal output.

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function thousands(n: number | bigint): string {
  return n.toLocaleString("en-US");
}

export function mib(bytes: number, digits = 1): string {
  return `${(bytes / MiB).toFixed(digits)} MiB`;
}

/** 491,400,000 bytes → "468.6 MiB"; ≥ 1 GiB → "4.36 GiB". */
export function humanBytes(bytes: number): string {
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(2)} GiB`;
  if (bytes >= MiB) return mib(bytes);
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function ms(t: number): string {
  return t >= 100 ? `${t.toFixed(0)} ms` : `${t.toFixed(1)} ms`;
}

export function gbps(bytes: number, millis: number): string {
  return millis > 0 ? `${(bytes / 1e6 / millis).toFixed(1)} GB/s` : "—";
}

const useColor = () => process.stdout.isTTY === true && !process.env.NO_COLOR;
const paint = (code: number) => (s: string) => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = paint(1);
export const dim = paint(2);
export const red = paint(31);
export const green = paint(32);
export const yellow = paint(33);

/** Columns padded to their widest cell; `right` lists the columns aligned right. */
export function table(rows: readonly (readonly string[])[], right: readonly number[] = [], indent = "  "): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(c))));
  return rows
    .map((r) => indent + r.map((c, i) => (right.includes(i) ? pad(c, widths[i]!, true) : i === r.length - 1 ? c : pad(c, widths[i]!, false))).join("  "))
    .join("\n");
}

function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, "").length;
}

function pad(s: string, width: number, right: boolean): string {
  const fill = " ".repeat(Math.max(0, width - visibleLength(s)));
  return right ? fill + s : s + fill;
}
