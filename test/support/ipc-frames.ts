// Frames for the socket tests, as cuda/wire.h lays them out (any header a test
// wants, good or bad), a raw client in another process (raw_client.py) for what
// IpcClient never sends, and the typed error a call throws.

import { CudaError } from "../../src/cuda/index.ts";

export const MAGIC = 0x31525647;
const RAW_CLIENT = new URL("./raw_client.py", import.meta.url).pathname;

/** The CudaError `fn` throws. */
export function thrown(fn: () => unknown): CudaError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CudaError) return e;
    throw e;
  }
  throw new Error("it did not throw");
}

/** A frame as cuda/wire.h lays it out, with any header a test wants. */
export function frame(json: string, header: { magic?: number; jsonBytes?: number; binBytes?: number; fds?: number } = {}, bin = new Uint8Array()): Uint8Array {
  const text = new TextEncoder().encode(json);
  const out = new Uint8Array(16 + text.length + bin.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, header.magic ?? MAGIC, true);
  view.setUint32(4, header.jsonBytes ?? text.length, true);
  view.setUint32(8, header.binBytes ?? bin.length, true);
  view.setUint32(12, header.fds ?? 0, true);
  out.set(text, 16);
  out.set(bin, 16 + text.length);
  return out;
}

/** The frames in raw bytes a client received: each one's JSON. */
export function framesIn(bytes: Uint8Array): string[] {
  const out: string[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + 16 <= bytes.length; ) {
    const json = view.getUint32(at + 4, true);
    const bin = view.getUint32(at + 8, true);
    out.push(new TextDecoder().decode(bytes.subarray(at + 16, at + 16 + json)));
    at += 16 + json + bin;
  }
  return out;
}

export function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 31 + seed + (i >> 11)) & 0xff;
  return out;
}

/** Runs raw_client.py: the bytes (hex), a file whose descriptor goes with them, as another user, closing at once. */
export async function rawClient(path: string, bytes: Uint8Array, options: { fdFile?: string; asUser?: number; script?: string; closeAfterSending?: boolean } = {}) {
  const hex = Buffer.from(bytes).toString("hex");
  // another user cannot run a python3 that lives in this user's home: the system's then
  const interpreter = options.asUser === undefined ? "python3" : "/usr/bin/python3";
  const python = options.script ? [interpreter, "-", path, hex] : [interpreter, RAW_CLIENT, path, hex];
  const command = options.asUser === undefined ? python : ["setpriv", `--reuid=${options.asUser}`, `--regid=${options.asUser}`, "--clear-groups", ...python];
  const child = Bun.spawn([...command, ...(options.fdFile ? [options.fdFile] : [])], {
    stdin: options.script ? new TextEncoder().encode(options.script) : "ignore",
    env: { ...process.env, RAW_CLIENT_CLOSE: options.closeAfterSending ? "1" : "" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (!out.trim()) throw new Error(`raw_client.py printed nothing: ${err}`);
  const result = JSON.parse(out) as { connected: boolean; received?: string; closed?: boolean; uid?: number; errno?: number };
  return { ...result, frames: framesIn(Buffer.from(result.received ?? "", "hex")) };
}
