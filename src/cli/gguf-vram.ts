#!/usr/bin/env bun
// gguf-vram <command> [options]: the package's command (its package.json "bin"),
// for `bunx gguf-vram load …` in any folder. Each command runs the entry
// function of its repository script (`bun run load` runs load.ts's), in this
// process; only the chosen command's modules are loaded.

import { constants } from "node:os";
import { resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT } from "./main.ts";
import { enterUserFolder } from "./user-cwd.ts";

interface Command {
  /** How it is called, and what it does, for the list in --help. */
  readonly synopsis: string;
  readonly summary: string;
  /** Runs it with process.argv holding only its own arguments; it exits the process. */
  readonly run: () => Promise<void>;
}

// One entry per command.
const COMMANDS: Record<string, Command> = {
  load: {
    synopsis: "load [file.gguf]",
    summary: "load a model into GPU memory (in a terminal, with no options, it asks which)",
    run: async () => {
      // as load.ts's own entry wires it
      const [{ inCI, loadCommand }, { realGpu }, { runMain }, { syncSink }] = await Promise.all([import("./load.ts"), import("./backend.ts"), import("./main.ts"), import("./output.ts")]);
      const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true && !inCI();
      runMain((argv, { signal }) => loadCommand(argv, { stdin: process.stdin, stdout: syncSink(1), stderr: syncSink(2), terminal: process.stdout, interactive, gpu: realGpu, signal }), { command: "gguf-vram load", graceful: true });
    },
  },
  inspect: {
    synopsis: "inspect <file.gguf>",
    summary: "what is in a GGUF file, and whether gguf-vram can load it",
    run: async () => {
      const [{ inspect }, { runMain }] = await Promise.all([import("./inspect.ts"), import("./main.ts")]);
      runMain(inspect, { command: "gguf-vram inspect" });
    },
  },
  fixtures: {
    synopsis: "fixtures [name…]",
    summary: "write synthetic models (real layouts, made-up weights) and corrupt files",
    // fixtures.ts keeps its entry function to itself: it runs as its own process
    run: () => runScript(fileURLToPath(new URL("./fixtures.ts", import.meta.url))),
  },
  serve: {
    synopsis: "serve [load|list|stats|unload]",
    summary: "keep models in GPU memory for other processes to attach to, and ask a running server",
    run: async () => {
      const [{ serveCommand }, { runMain }] = await Promise.all([import("./serve.ts"), import("./main.ts")]);
      runMain(serveCommand, { command: "gguf-vram serve", graceful: true });
    },
  },
  build: {
    synopsis: "build",
    summary: "build the CUDA library into the cache now (else the first load does)",
    run: async () => {
      const [{ buildCommand }, { runMain }] = await Promise.all([import("../../build.ts"), import("./main.ts")]);
      runMain((argv, { signal }) => buildCommand(argv, signal, "gguf-vram build"), { command: "gguf-vram build", graceful: true });
    },
  },
};

function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.synopsis.length));
  const lines = Object.values(COMMANDS).map((c) => `  ${c.synopsis.padEnd(width)}  ${c.summary}`);
  return `usage: gguf-vram <command> [options]

${lines.join("\n")}

  gguf-vram <command> --help   the command's options
  gguf-vram --version          the version

exit codes: 0 ok · 1 error · 2 usage · 3 no GPU · 4 out of VRAM · 130 cancelled`;
}

/** Runs `bun <script> <args>` with this process's terminal, and exits with its code. */
async function runScript(script: string): Promise<void> {
  // env given: Bun.spawn would pass the environment the process started with, not this one
  const child = Bun.spawn([process.execPath, script, ...process.argv.slice(2)], { env: process.env, stdio: ["inherit", "inherit", "inherit"] });
  // Ctrl-C reaches the child too (one process group): it cancels and exits 130 itself.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => child.kill("SIGTERM"));
  const code = await child.exited;
  process.exit(child.signalCode ? 128 + constants.signals[child.signalCode as NodeJS.Signals] : code);
}

async function main(): Promise<void> {
  enterUserFolder();
  // Installed, the package's folder is not the user's to write in (it may be read-only or shared):
  // the synthetic models go to ./fixtures where the user stands, as they go to a checkout's ./fixtures.
  if (!process.env.GGUF_VRAM_FIXTURES && import.meta.dir.split(sep).includes("node_modules")) process.env.GGUF_VRAM_FIXTURES = resolve("fixtures");
  const name = process.argv[2];
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    process.exit(EXIT.ok);
  }
  if (name === "--version" || name === "-v") {
    console.log((await import("../../package.json")).version);
    process.exit(EXIT.ok);
  }
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command) {
    console.error(name === undefined ? usage() : `error: gguf-vram has no command "${name}": it has ${Object.keys(COMMANDS).join(", ")} (see gguf-vram --help)`);
    process.exit(EXIT.usage);
  }
  process.argv.splice(2, 1); // the command's own arguments from argv[2] on, as when its script is run
  await command.run();
}

await main();
