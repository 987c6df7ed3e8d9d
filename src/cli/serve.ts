// bun run serve [--socket P] [--json] [--budget B] [--keep-alive D] [--workers N]
// bun run serve load FILE [--device N | --devices 0,1 [--split 3,1] | --replicas 0,1] [--verify] [--keep-alive D] [--json]
// bun run serve list | stats [--json] · bun run serve unload MODEL
//
// The server keeps models in VRAM for other processes to attach to; the
// subcommands ask a running one. Exit codes: 0 ok (and SIGTERM), 1 error,
// 2 usage, 3 no GPU, 4 out of VRAM, 130 Ctrl-C.

import { z } from "zod";
import { deviceCount, openCuda } from "../cuda/index.ts";
import { toLoadError } from "../load/index.ts";
import { connect } from "../serve/client.ts";
import { ResidentServer } from "../serve/server.ts";
import { defaultSocketPath } from "../serve/socket-path.ts";
import { boolFlag, deviceListFlag, intFlag, parseFlags, proportionsFlag, splitArgs, UsageError } from "./args.ts";
import { targetOf } from "./load.ts";
import type { Io } from "./load-batch.ts";
import { runMain, type MainContext } from "./main.ts";
import { syncSink } from "./output.ts";
import { budgetFlag, durationFlag } from "./serve-flags.ts";
import { listLines, remoteLoad, statsLines } from "./serve-remote.ts";
import { ServeView } from "./serve-view.ts";

export const SERVE_USAGE = `usage: bun run serve [options]            keep models in VRAM for other processes
       bun run serve load FILE [options]  ask the running server to load a model
       bun run serve list | stats         what it holds · unload MODEL (an id or a path)

  --socket PATH    where the server listens (default ${defaultSocketPath()};
                   GGUF_VRAM_SOCKET sets it too)
  --json           the server logs events as JSON lines; the others print JSON
  --budget SIZE    VRAM resident models may use: 40G on every GPU, or 0=40G,1=70G
                   (default: each GPU's memory)
  --keep-alive D   how long a model nobody holds stays (30s, 10m, 2h; 0: unload at
                   the last detach; -1: while the server runs; default 5m)
  --workers N      upload threads per GPU for the server's loads
  load: --device N, --devices 0,1 [--split 3,1], --replicas 0,1, --verify,
        --unchecked, --keep-alive D (for this model), as for bun run load

exit codes: 0 ok (SIGTERM: 0) · 1 error · 2 usage · 3 no GPU · 4 out of VRAM · 130 Ctrl-C`;

const Flags = z.object({
  socket: z.string().min(1, "must be the path of a socket").optional(),
  json: boolFlag,
  budget: budgetFlag,
  "keep-alive": durationFlag,
  workers: intFlag("a number of upload threads per GPU", 1, 256),
  device: intFlag("a GPU index", 0, 1023),
  devices: deviceListFlag(1023),
  split: proportionsFlag("--devices"),
  replicas: deviceListFlag(1023),
  verify: boolFlag,
  unchecked: boolFlag,
  debug: boolFlag,
  help: boolFlag,
});
type Flags = z.infer<typeof Flags>;

const SUBCOMMANDS = ["load", "list", "stats", "unload"] as const;
const SERVER_ONLY = ["budget", "workers"] as const;
const LOAD_ONLY = ["device", "devices", "split", "replicas", "verify", "unchecked"] as const;

export async function serveCommand(argv: readonly string[], context: MainContext): Promise<number> {
  const args = splitArgs(argv, ["socket", "budget", "keep-alive", "workers", "device", "devices", "split", "replicas"]);
  const flags = parseFlags(Flags, args.flags);
  if (flags.help) return (syncSink(1).write(`${SERVE_USAGE}\n`), 0);
  const [sub, ...rest] = args.positionals;
  if (sub !== undefined && !SUBCOMMANDS.includes(sub as (typeof SUBCOMMANDS)[number])) throw new UsageError(`unknown subcommand ${sub} (load, list, stats, unload; none starts the server)`);
  const given = (names: readonly string[]) => names.find((n) => flags[n as keyof Flags] !== undefined);
  if (sub !== undefined && given(SERVER_ONLY)) throw new UsageError(`--${given(SERVER_ONLY)} is a setting of the server: give it to bun run serve`);
  if (sub !== "load" && given(LOAD_ONLY)) throw new UsageError(`--${given(LOAD_ONLY)} is for bun run serve load`);
  if (sub === undefined) return runServer(flags, context);
  return runRemote(sub as (typeof SUBCOMMANDS)[number], rest, flags);
}

async function runServer(flags: Flags, { signal }: MainContext): Promise<number> {
  try {
    await openCuda();
    if (deviceCount() === 0) throw new Error("the driver lists no CUDA device");
  } catch (e) {
    throw toLoadError(e);
  }
  const out = syncSink(1);
  const view = new ServeView(out, flags.json ? "json" : out.isTTY ? "live" : "lines");
  let terminated = false;
  process.once("SIGTERM", () => (terminated = true));
  const server = await ResidentServer.start({
    socket: flags.socket,
    ...(flags.budget !== undefined ? { budgets: flags.budget } : {}),
    ...(flags["keep-alive"] !== undefined ? { keepAliveMs: flags["keep-alive"] } : {}),
    ...(flags.workers !== undefined ? { workers: flags.workers } : {}),
    onEvent: (e) => view.event(e),
  });
  view.attach(server);
  await Promise.race([server.done, new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })))]);
  await server.stop();
  view.stop();
  if (!signal.aborted) return 1; // the server ended by itself: its error was logged
  return terminated ? 0 : 130;
}

async function runRemote(sub: (typeof SUBCOMMANDS)[number], rest: readonly string[], flags: Flags): Promise<number> {
  const stdout = syncSink(1);
  const stderr = syncSink(2);
  const io: Io = {
    out: (text) => void stdout.write(`${text}\n`),
    err: (text) => void stderr.write(`${text}\n`),
    progress: stderr.isTTY ? (text) => void stderr.write(text === null ? "\r\x1b[2K" : `\r\x1b[2K  ${text}`) : undefined,
    stdin: process.stdin,
    signal: new AbortController().signal,
  };
  const needs = (n: number, what: string) => {
    if (rest.length !== n) throw new UsageError(`bun run serve ${sub} takes ${what}`);
  };
  if (sub === "load" || sub === "unload") needs(1, sub === "load" ? "one model file" : "one model (its id, or the path of its file)");
  else needs(0, "no arguments");
  using client = await connect({ socket: flags.socket, client: `bun run serve ${sub}` });
  switch (sub) {
    case "load":
      return await remoteLoad(client, { path: rest[0]!, target: targetOf(flags), verify: flags.verify ?? false, unchecked: flags.unchecked ?? false, keepAliveMs: flags["keep-alive"], json: flags.json ?? false }, io);
    case "list": {
      const models = await client.list();
      io.out(flags.json ? JSON.stringify(models, null, 2) : listLines(models).join("\n"));
      return 0;
    }
    case "stats": {
      const stats = await client.stats();
      io.out(flags.json ? JSON.stringify(stats, null, 2) : statsLines(stats).join("\n"));
      return 0;
    }
    case "unload": {
      const freed = await client.unload(rest[0]!);
      io.out(flags.json ? JSON.stringify({ freedBytes: freed }) : `unloaded ${rest[0]}: ${(freed / 1024 ** 3).toFixed(2)} GiB freed`);
      return 0;
    }
  }
}

if (import.meta.main) runMain(serveCommand, { command: "bun run serve", graceful: true });
