// Where the resident-model server listens, and the folder rules that keep
// other users out: the socket lives in a folder of its own, owned by this user
// and closed to everyone else (0700); the socket itself is 0600 (cuda/ipc.cu),
// and every connection's peer is checked besides (SO_PEERCRED).

import { lstatSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { ServeError } from "./errors.ts";

/** $GGUF_VRAM_SOCKET, else $XDG_RUNTIME_DIR/gguf-vram/serve.sock, else /tmp/gguf-vram-<uid>/serve.sock. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GGUF_VRAM_SOCKET) return env.GGUF_VRAM_SOCKET;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "gguf-vram", "serve.sock");
  return join("/tmp", `gguf-vram-${process.getuid?.() ?? 0}`, "serve.sock");
}

/**
 * Makes the socket's folder (0700) when it is missing, and checks one that
 * exists: a directory owned by this user that nobody else may enter. (A folder
 * under /tmp that someone else made first could otherwise let them replace the
 * socket.)
 */
export function prepareSocketFolder(socket: string): void {
  const folder = dirname(socket);
  try {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ServeError("INSECURE_SOCKET", `the socket's folder ${folder} cannot be created (${code})`, "give another socket path with --socket or GGUF_VRAM_SOCKET");
  }
  const st = lstatSync(folder);
  const uid = process.getuid?.() ?? st.uid;
  if (!st.isDirectory()) throw new ServeError("INSECURE_SOCKET", `the socket's folder ${folder} is not a directory`, "give another socket path with --socket or GGUF_VRAM_SOCKET");
  if (st.uid !== uid) {
    throw new ServeError("INSECURE_SOCKET", `the socket's folder ${folder} belongs to user ${st.uid}, not to you (${uid})`, "someone else made it: remove it, or give another socket path with --socket or GGUF_VRAM_SOCKET");
  }
  if ((st.mode & 0o077) !== 0) {
    throw new ServeError("INSECURE_SOCKET", `the socket's folder ${folder} is open to other users (mode ${(st.mode & 0o777).toString(8)})`, `make it private (chmod 700 ${folder}), or give another socket path with --socket`);
  }
}
