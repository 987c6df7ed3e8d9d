// Errors of the resident-model server and its clients: a code, one sentence,
// a hint, and the CLI's exit code, like the loader's LoadError.

import type { ErrorCode, ReplyError } from "./protocol.ts";

export type ServeErrorCode =
  | ErrorCode // what a server answered
  | "NO_SERVER" // nothing listens at the socket
  | "IN_USE" // another server holds the socket
  | "DISCONNECTED" // the server went away mid-request
  | "PROTOCOL" // the server said something this client cannot read
  | "INSECURE_SOCKET"; // the socket's folder is not private

const EXIT_CODES: Partial<Record<ServeErrorCode, number>> = { NO_CUDA_DEVICE: 3, OUT_OF_VRAM: 4, BAD_REQUEST: 2 };

export class ServeError extends Error {
  override readonly name = "ServeError";
  readonly exitCode: number;

  constructor(
    readonly code: ServeErrorCode,
    message: string,
    readonly hint: string,
    /** For LOAD_FAILED: the loader's code. */
    readonly causeCode?: string,
  ) {
    super(message);
    this.exitCode = EXIT_CODES[code] ?? 1;
  }

  static fromReply(e: ReplyError): ServeError {
    return new ServeError(e.code, e.message, e.hint, e.cause);
  }
}
