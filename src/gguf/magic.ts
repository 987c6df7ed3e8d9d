// The first bytes of a file say what it is. A GGUF file starts with "GGUF"
// then a little-endian u32 version; anything else gets an error that guesses
// what the file is instead, so the user knows what to do with it.

import { GgufError } from "./errors.ts";

export const GGUF_MAGIC = [0x47, 0x47, 0x55, 0x46]; // "GGUF"
export const SUPPORTED_VERSIONS = [1, 2, 3];

export function isGgufMagic(head: Uint8Array): boolean {
  return head.length >= 4 && GGUF_MAGIC.every((b, i) => head[i] === b);
}

/** The error for a file that does not start with "GGUF". */
export function notGguf(head: Uint8Array): GgufError {
  const shown = printable(head.subarray(0, 4));
  const says = `not a GGUF file: it starts with ${shown}`;
  const [problem, hint] = guess(head);
  return new GgufError("NOT_GGUF", problem ? `${says} — ${problem}` : says, 0, hint);
}

function guess(h: Uint8Array): [string, string] {
  const ascii = String.fromCharCode(...h.subarray(0, 8));
  if (ascii.startsWith("PK\x03\x04")) return ["is this a zip archive (or a PyTorch .bin)?", "unzip it, or convert PyTorch weights with llama.cpp's convert_hf_to_gguf.py"];
  if (ascii.startsWith("\x7fELF")) return ["this is an executable", "pass the path of a .gguf model file"];
  if (/^(lmgg|fmgg|tjgg|algg)/.test(ascii)) return ["this is a legacy GGML/GGJT model", "convert it with llama.cpp's convert_llama_ggml_to_gguf.py"];
  if (h[0] === 0x7b || h[0] === 0x5b) return ["this looks like JSON", "pass the .gguf file, not its config"];
  if (h.length >= 10 && h[8] === 0x7b && h[9] === 0x22) return ["this looks like a safetensors file", "convert it with llama.cpp's convert_hf_to_gguf.py"];
  if (h[0] === 0x1f && h[1] === 0x8b) return ["this is gzip-compressed", "decompress it first"];
  if (ascii.startsWith("version ") || ascii.startsWith("<!DOCTYPE") || ascii.startsWith("<html")) return ["this is a text or HTML file (a Git LFS pointer or an error page?)", "download the real file (git lfs pull, or the resolve/ URL)"];
  return ["", "pass the path of a .gguf model file"];
}

function printable(b: Uint8Array): string {
  if (b.length === 0) return "nothing (the file is empty)";
  const text = [...b].every((c) => c >= 0x20 && c < 0x7f);
  if (text) return `'${String.fromCharCode(...b)}'`;
  return [...b].map((c) => `0x${c.toString(16).padStart(2, "0")}`).join(" ");
}

/** A version word that reads as 1..3 byte-swapped is a big-endian file. */
export function isByteSwappedVersion(version: number): boolean {
  const swapped = ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
  return (swapped >>> 0) !== version && SUPPORTED_VERSIONS.includes(swapped >>> 0);
}
