// bun run inspect <file> [--json] [--full]: what is in a GGUF file, and whether
// it is a model this tool can load.

import { z } from "zod";
import { checkModel } from "../arch/index.ts";
import { readGguf, readModelFiles } from "../gguf/index.ts";
import { boolFlag, parseFlags, splitArgs, UsageError } from "./args.ts";
import { runMain } from "./main.ts";
import { inspectJson, inspectText } from "./inspect-report.ts";

export const INSPECT_USAGE = `usage: bun run inspect <file.gguf> [--json] [--full]

  A file of a split set (NAME-00001-of-00003.gguf, any of them) shows the whole set.

  --json   print one JSON document (the shape is in the README)
  --full   list every tensor and every array item`;

const Flags = z.object({ json: boolFlag, full: boolFlag, help: boolFlag });

export async function inspect(argv: readonly string[]): Promise<number> {
  const args = splitArgs(argv);
  const flags = parseFlags(Flags, args.flags);
  if (flags.help) {
    console.log(INSPECT_USAGE);
    return 0;
  }
  if (args.positionals.length !== 1) throw new UsageError(args.positionals.length === 0 ? "which file? give the path of a .gguf file" : "give exactly one file");
  const file = args.positionals[0]!;
  // A shard of a split set is inspected with the rest of its set.
  const g = await readModelFiles(file, (p) => readGguf(p));
  const check = checkModel(g);
  if (flags.json) console.log(JSON.stringify(inspectJson(file, g, check), null, 2));
  else console.log(inspectText(file, g, check, flags.full ?? false));
  return 0;
}

if (import.meta.main) runMain(inspect, { command: "bun run inspect" });
