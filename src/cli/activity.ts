// The interactive load's spinner and progress bar. They draw as
// @clack/prompts' do (the same symbols, frames and bar), but own the keyboard
// differently: clack's put the terminal in raw mode and answer Ctrl-C with
// process.exit(0), so a cancel during a long step exited 0 and skipped every
// clean-up. These read the keys themselves while they run: Ctrl-C becomes
// `interrupt` (by default the same SIGINT the terminal would have sent, so the
// command's handler cancels gracefully, and a second one exits at once), and
// any other key is swallowed, so it neither echoes nor breaks the drawing.

import type { Readable, Writable } from "node:stream";
import { stripVTControlCharacters, styleText } from "node:util";
import { S_BAR, S_STEP_CANCEL, S_STEP_ERROR, S_STEP_SUBMIT, unicode } from "@clack/prompts";

export interface ActivityUi {
  readonly input: Readable;
  readonly output: Writable;
  /** What Ctrl-C does while the activity runs (default: raise SIGINT in this process). */
  readonly interrupt?: () => void;
}

export interface Activity {
  start(text: string): void;
  /** A new text for the running line. */
  message(text: string): void;
  stop(text: string): void;
  cancel(text: string): void;
  error(text: string): void;
}

export interface ProgressBar extends Activity {
  /** Moves the bar on by `by` of its `max`, with a new text. */
  advance(by: number, text: string): void;
}

const FRAMES = unicode ? ["◒", "◐", "◓", "◑"] : ["•", "o", "O", "0"];
const FRAME_MS = unicode ? 80 : 120;
const BAR = unicode ? "━" : "=";
const BAR_WIDTH = 40;
const CTRL_C = "\u0003";
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";

const raiseSigint = () => void process.kill(process.pid, "SIGINT");

// ─── the keyboard ─────────────────────────────────────────────────────────────

type RawInput = Readable & { isTTY?: boolean; isRaw?: boolean; setRawMode?: (raw: boolean) => unknown };

/** Reads every key from `input` until the returned function is called; Ctrl-C calls `interrupt`. */
function holdKeyboard(input: RawInput, output: Writable, interrupt: () => void): () => void {
  const raw = input.isTTY === true && typeof input.setRawMode === "function";
  const wasRaw = input.isRaw === true;
  const onData = (chunk: Buffer | string) => {
    for (const key of chunk.toString()) if (key === CTRL_C) interrupt();
  };
  // A second Ctrl-C exits at once (process.exit): leave the terminal as it was found.
  const restore = () => {
    if (raw) input.setRawMode!(wasRaw);
    output.write(SHOW_CURSOR);
  };
  if (raw) input.setRawMode!(true);
  input.on("data", onData);
  input.resume();
  process.on("exit", restore);
  return () => {
    input.off("data", onData);
    input.pause();
    process.off("exit", restore);
    restore();
  };
}

// ─── drawing ──────────────────────────────────────────────────────────────────

function columnsOf(output: Writable): number {
  const columns = (output as Writable & { columns?: number }).columns;
  return typeof columns === "number" && columns > 0 ? columns : 80;
}

/** How many terminal rows `line` takes once it wraps. */
function rowsOf(line: string, columns: number): number {
  return Math.max(1, Math.ceil([...stripVTControlCharacters(line)].length / columns));
}

export function spinner(ui: ActivityUi): Activity {
  const { output } = ui;
  let text = "";
  let timer: ReturnType<typeof setInterval> | null = null;
  let release: (() => void) | null = null;
  let drawnRows = 0;
  let frame = 0;
  let dots = 0;

  const erase = () => {
    if (drawnRows === 0) return;
    output.write(`${drawnRows > 1 ? `\x1b[${drawnRows - 1}A` : ""}\x1b[1G\x1b[J`);
    drawnRows = 0;
  };
  const draw = () => {
    erase();
    const line = `${styleText("magenta", FRAMES[frame]!)}  ${text}${".".repeat(Math.floor(dots))}`;
    output.write(line);
    drawnRows = rowsOf(line, columnsOf(output));
    frame = (frame + 1) % FRAMES.length;
    dots = dots < 3.875 ? dots + 0.125 : 0;
  };
  const finish = (symbol: string, last: string) => {
    if (!timer) return;
    clearInterval(timer);
    timer = null;
    erase();
    output.write(`${symbol}  ${last}\n`);
    release?.();
    release = null;
  };
  return {
    start(first) {
      if (timer) return;
      text = first;
      release = holdKeyboard(ui.input, output, ui.interrupt ?? raiseSigint);
      output.write(`${HIDE_CURSOR}${styleText("gray", S_BAR)}\n`);
      draw();
      timer = setInterval(draw, FRAME_MS);
    },
    message: (next) => void (text = next),
    stop: (last) => finish(styleText("green", S_STEP_SUBMIT), last),
    cancel: (last) => finish(styleText("red", S_STEP_CANCEL), last),
    error: (last) => finish(styleText("red", S_STEP_ERROR), last),
  };
}

/** A spinner whose line starts with a bar of `max` steps, as clack's progress() draws it. */
export function progressBar(ui: ActivityUi, max: number): ProgressBar {
  const line = spinner(ui);
  let done = 0;
  const bar = (text: string) => {
    const filled = Math.floor((Math.min(done, max) / Math.max(1, max)) * BAR_WIDTH);
    return `${styleText("magenta", BAR.repeat(filled))}${styleText("dim", BAR.repeat(BAR_WIDTH - filled))} ${text}`;
  };
  return {
    ...line,
    start: (text) => line.start(bar(text)),
    message: (text) => line.message(bar(text)),
    advance(by, text) {
      done += by;
      line.message(bar(text));
    },
  };
}
