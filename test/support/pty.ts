// A command in a real pseudo-terminal, as a user's shell runs it: the child
// sees a TTY on stdin, stdout and stderr, keys go through the terminal's line
// discipline (Ctrl-C is a SIGINT in cooked mode, a \x03 byte in raw mode), and
// what it draws is collected. Tests wait for text, press keys, and read the
// exit code and the screen.

export { KEY } from "./terminal.ts";

export interface PtyOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string | undefined>;
  readonly cols?: number;
  readonly rows?: number;
}

export class Pty {
  private text = "";
  private readonly proc: Bun.Subprocess;

  constructor(argv: readonly string[], options: PtyOptions = {}) {
    this.proc = Bun.spawn([...argv], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      terminal: {
        cols: options.cols ?? 120,
        rows: options.rows ?? 40,
        data: (_, bytes) => void (this.text += new TextDecoder().decode(bytes)),
      },
    });
  }

  /** Everything drawn so far, as bytes were written (colours, cursor moves, \r\n). */
  get raw(): string {
    return this.text;
  }

  /** Everything drawn so far, without colours, cursor movements and carriage returns. */
  get screen(): string {
    // eslint-disable-next-line no-control-regex
    return this.text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
  }

  /** The screen as one line: prompts wrap long lines at the terminal's width, behind their │ guide. */
  get flat(): string {
    return this.screen.replace(/\s*\n[│├└┌◇◆●○■▲ ]*/g, " ").replace(/\s+/g, " ");
  }

  /** Waits until `text` has been drawn (on one line, or wrapped); fails (with the screen) after `ms` or if the command ends first. */
  async waitFor(text: string, ms = 60_000): Promise<void> {
    const t0 = performance.now();
    while (!this.flat.includes(text)) {
      if (this.proc.exitCode !== null) throw new Error(`the command ended (exit ${this.proc.exitCode}) without showing ${JSON.stringify(text)}; the screen shows:\n${this.screen.slice(-3000)}`);
      if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${JSON.stringify(text)}; the screen shows:\n${this.screen.slice(-3000)}`);
      await Bun.sleep(5);
    }
  }

  press(...keys: string[]): void {
    for (const k of keys) this.proc.terminal!.write(k);
  }

  /** The exit code; a command still running after `ms` is killed and the wait fails, with the screen. */
  async exit(ms = 120_000): Promise<number> {
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), ms);
    const code = await this.proc.exited;
    clearTimeout(timer);
    await Bun.sleep(20); // the last bytes the terminal holds
    this.proc.terminal?.close();
    if (this.proc.signalCode === "SIGKILL") throw new Error(`the command was still running after ${ms} ms; the screen shows:\n${this.screen.slice(-3000)}`);
    return code;
  }

  kill(): void {
    this.proc.kill("SIGKILL");
  }
}
