// examples/attach.cu, the C client's example, built against libgguf_vram_client
// into the per-user cache like the libraries (named by the hash of its source,
// the client library, the flags and nvcc): for tests and benchmarks that run it.
// It ships with the repository, not with the package.

import { existsSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { makeBuildFolder, nativeCacheDir, rememberedVersionPath } from "./cache.ts";
import { NativeBuildError } from "./errors.ts";
import { archKey, archRequest, findNvcc, gencodeFlags, nvccVersion, readRememberedVersion, resolveArchs, runTool } from "./nvcc.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const SOURCE = "examples/attach.cu";

export interface ExampleOptions {
  /** Only for this machine's GPUs (as `bun run build --native`). */
  native?: boolean;
  quiet?: boolean;
  signal?: AbortSignal;
}

/** Builds the attach example (and the client library first) when the cache lacks it; returns the program's path. */
export async function ensureExample(options: ExampleOptions = {}): Promise<string> {
  const source = join(ROOT, SOURCE);
  if (!existsSync(source)) throw new NativeBuildError(`${SOURCE} is not in ${ROOT}`, "the example ships with the gguf-vram repository: build it from a checkout");
  const { ensureClientLibrary } = await import("../../build.ts");
  const client = await ensureClientLibrary({ native: options.native, quiet: true, signal: options.signal });
  const nvccPath = findNvcc();
  const cacheDir = nativeCacheDir();
  const nvcc = nvccVersion(nvccPath, readRememberedVersion(rememberedVersionPath(cacheDir)));
  const request = archRequest(options.native);
  const compileFlags = ["-O3", "-std=c++17", "-I", client.includeDir];
  // the library by its keyed path, so the program loads exactly it; --no-as-needed keeps it linked whatever the order
  const linkFlags = ["-Xlinker", "--no-as-needed", client.library, "-cudart", "static"];

  const hasher = new Bun.CryptoHasher("sha256");
  hasher.update(`attach\0`).update(readFileSync(source)).update("\0").update(readFileSync(join(client.includeDir, "gguf_vram_client.h")));
  hasher.update(`\0${[...compileFlags, ...linkFlags, ...archKey(request)].join(" ")}\0${nvcc.version}`);
  const program = join(cacheDir, `attach-${hasher.digest("hex").slice(0, 16)}`);
  if (existsSync(program)) return program;

  const started = performance.now();
  const folder = makeBuildFolder(cacheDir);
  try {
    const built = join(folder.path, "attach");
    const gencode = gencodeFlags(resolveArchs(request));
    const result = await runTool([nvccPath, ...compileFlags, ...gencode, source, ...linkFlags, "-o", built], ROOT, folder.path, options.signal);
    if (!result.ok) throw new NativeBuildError(`nvcc failed on ${SOURCE}:\n${result.output}`, `fix ${SOURCE}, or report this with your nvcc version`);
    renameSync(built, program);
  } finally {
    folder.remove();
  }
  if (!options.quiet) console.log(`built ${program} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return program;
}
