// A pretend terminal for driving @clack/prompts: an input stream to type into
// and an output stream that collects what the prompts draw.

import { PassThrough } from "node:stream";

export const KEY = { enter: "\r", down: "\x1b[B", up: "\x1b[A", ctrlC: "\x03", left: "\x1b[D", right: "\x1b[C" } as const;

export class Terminal {
  readonly input = new PassThrough();
  readonly output = new PassThrough();
  private text = "";

  constructor() {
    this.output.on("data", (chunk: Buffer) => (this.text += chunk.toString()));
  }

  /** Everything drawn so far, without colours and cursor movements. */
  get screen(): string {
    // eslint-disable-next-line no-control-regex
    return this.text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
  }

  /** The screen as one line: prompts wrap long hints at 80 columns, and boxes add borders. */
  get flat(): string {
    return this.screen.replace(/\s*\n[│├└┌◇◆●○■ ]*/g, " ").replace(/\s+/g, " ");
  }

  /** Waits until `text` has been drawn (at least `times` times), or fails after `ms`. */
  async waitFor(text: string, ms = 10_000, times = 1): Promise<void> {
    const t0 = performance.now();
    while (this.screen.split(text).length - 1 < times) {
      if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${JSON.stringify(text)}; the screen shows:\n${this.screen.slice(-2000)}`);
      await Bun.sleep(5);
    }
  }

  press(...keys: string[]): void {
    for (const k of keys) this.input.write(k);
  }
}
