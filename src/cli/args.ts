// Command-line flags: split argv into flags and positionals, then validate with
// zod. A usage error is one sentence naming the flag and what it takes, and
// exit code 2; zod's own wording never reaches the user.

import { z } from "zod";

export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface RawArgs {
  readonly flags: Record<string, string | boolean>;
  readonly positionals: string[];
}

/** `--flag`, `--flag=value`, `--flag value` (for flags named in `valued`), `--` ends flags. */
export function splitArgs(argv: readonly string[], valued: readonly string[] = []): RawArgs {
  const flags: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (eq >= 0) flags[name] = a.slice(eq + 1);
      else if (valued.includes(name)) {
        const next = argv[i + 1];
        if (next === undefined || next.startsWith("--")) throw new UsageError(`--${name} needs a value`);
        flags[name] = next;
        i++;
      } else flags[name] = true;
    } else if (a === "-h") flags.help = true;
    else if (a.startsWith("-") && a.length > 1) throw new UsageError(`unknown option ${a}`);
    else positionals.push(a);
  }
  return { flags, positionals };
}

/** Validate flags against a zod object; unknown flags and bad values become UsageErrors. */
export function parseFlags<T extends z.ZodObject>(schema: T, flags: Record<string, string | boolean>): z.infer<T> {
  const known = Object.keys(schema.shape);
  for (const name of Object.keys(flags)) {
    if (!known.includes(name)) throw new UsageError(`unknown option --${name} (known: ${known.map((k) => `--${k}`).join(", ")})`);
  }
  const r = schema.strict().safeParse(flags);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const given = flags[String(issue.path[0])];
    // Our schemas say what each flag takes ("must be …", "takes …"); zod's generic wording is not shown.
    const says = /^(must|takes)/.test(issue.message) ? issue.message : "has an invalid value";
    throw new UsageError(`--${issue.path.join(".")} ${says}${typeof given === "string" ? ` (got "${given}")` : ""}`);
  }
  return r.data as z.infer<T>;
}

/** A boolean flag: present, or =true/=false. */
export const boolFlag = z
  .union([z.boolean(), z.enum(["true", "false", "1", "0"])], { error: "takes no value (or =true, =false)" })
  .transform((v) => v === true || v === "true" || v === "1")
  .optional();

/**
 * An integer flag in [min, max]: `what` says what it is ("a GPU index").
 * An empty value (--workers=) is an error, not 0.
 */
export function intFlag(what: string, min: number, max: number) {
  const message = `must be ${what}: a whole number from ${min} to ${max}`;
  return z
    .string({ error: message })
    .regex(/^\d+$/, message)
    .transform(Number)
    .refine((n) => n >= min && n <= max, message)
    .optional();
}

/** Splits "0, 1,2" into its items, or null when an item does not match `item`. */
function commaList(text: string, item: RegExp): string[] | null {
  const items = text.split(",").map((s) => s.trim());
  return items.every((s) => item.test(s)) ? items : null;
}

/**
 * A comma list of GPU indices (`--devices 0,1`): whole numbers in [0, max],
 * each named once (a GPU cannot hold two parts of one model, or two copies).
 */
export function deviceListFlag(max: number) {
  const message = `must be GPU indices: whole numbers from 0 to ${max}, separated by commas (e.g. 0,1)`;
  return z
    .string({ error: message })
    .refine((s) => commaList(s, /^\d+$/)?.every((n) => Number(n) <= max) === true, message)
    .transform((s) => commaList(s, /^\d+$/)!.map(Number))
    .refine((list) => new Set(list).size === list.length, "must name each GPU once (e.g. 0,1)")
    .optional();
}

/** Proportions (`--split 3,1`): numbers ≥ 0, at least one above 0 (all 0 would give nothing anywhere). */
export function proportionsFlag(of: string) {
  const message = `must be proportions, one per GPU of ${of}: numbers ≥ 0 separated by commas, at least one above 0 (e.g. 3,1)`;
  const number = /^(\d+(\.\d*)?|\.\d+)$/;
  return z
    .string({ error: message })
    .refine((s) => commaList(s, number)?.some((n) => Number(n) > 0) === true, message)
    .transform((s) => commaList(s, number)!.map(Number))
    .optional();
}
