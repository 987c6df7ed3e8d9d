// Why a load (or a verify) stops before its work is done — its caller aborted
// it, or one of the caller's callbacks threw — and the rule that keeps errors
// honest: the CANCELLED that the work reports because it was stopped becomes
// the stop's reason, but a real failure (a copy that failed, a VERIFY_FAILED)
// is reported as itself, never masked by an abort that came after it.

import { cancelled, LoadError, toLoadError } from "./errors.ts";

export class LoadStop implements Disposable {
  #reason: LoadError | null = null;
  readonly #hooks = new Set<() => void>();
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => this.stop(cancelled());

  constructor(signal?: AbortSignal) {
    this.#signal = signal;
    if (signal?.aborted) this.#reason = cancelled();
    else signal?.addEventListener("abort", this.#onAbort);
  }

  /** Stops the work, for `reason` (the first reason given is the one kept). */
  stop(reason: LoadError): void {
    if (this.#reason) return;
    this.#reason = reason;
    for (const hook of [...this.#hooks]) hook();
  }

  get stopped(): boolean {
    return this.#reason !== null;
  }

  /** Runs `hook` when the work stops (at once if it has); the returned function unhooks it. */
  onStop(hook: () => void): () => void {
    if (this.#reason) {
      hook();
      return () => {};
    }
    this.#hooks.add(hook);
    return () => this.#hooks.delete(hook);
  }

  /** A checkpoint between steps: throws the reason once stopped. */
  check(): void {
    if (this.#reason) throw this.#reason;
  }

  /** The error to report for the failure `e` (see the top of this file). */
  explain(e: unknown, path?: string): LoadError {
    const error = toLoadError(e, path);
    return this.#reason && error.code === "CANCELLED" ? this.#reason : error;
  }

  /** Calls the caller's `f`; if it throws, the work stops with CALLBACK_FAILED (the error as cause). */
  callback<A extends unknown[]>(name: string, f: ((...args: A) => void) | undefined, ...args: A): void {
    if (!f || this.#reason) return;
    try {
      f(...args);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      this.stop(new LoadError("CALLBACK_FAILED", `the ${name} callback threw: ${why}`, "fix the callback; the load was stopped and everything it took was freed", { cause: e }));
    }
  }

  [Symbol.dispose](): void {
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#hooks.clear();
  }
}

/** `promise`, or the stop's reason as soon as the work stops first (what `promise` holds is left to settle). */
export function unlessStopped<T>(promise: Promise<T>, stop: LoadStop): Promise<T> {
  if (stop.stopped) return Promise.reject(stopReason(stop));
  return new Promise<T>((resolve, reject) => {
    const unhook = stop.onStop(() => reject(stopReason(stop)));
    promise.then(resolve, reject).finally(unhook);
  });
}

function stopReason(stop: LoadStop): LoadError {
  try {
    stop.check();
  } catch (e) {
    return e as LoadError;
  }
  return cancelled();
}
