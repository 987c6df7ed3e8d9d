// The native libraries of gguf-vram: one entry each. A library is built from the
// files of its source folder with nvcc, and cached under a name that carries the
// hash of everything that went into it (see cache.ts).

export interface NativeTarget {
  /** The library's name; it is cached as `<name>-<key>.so`. */
  readonly name: string;
  /** Its source folder, relative to the package root; subfolders are not its sources. */
  readonly sourceDir: string;
  /** Extensions of the files compiled one by one into objects, then linked. */
  readonly compiled: readonly string[];
  /** Extensions of the files that are not compiled but change the library (headers). */
  readonly included: readonly string[];
  /** Files outside the source folder that change it too (a shared header), relative to the package root. */
  readonly alsoHashed?: readonly string[];
  readonly compileFlags: readonly string[];
  readonly linkFlags: readonly string[];
  /** Whether it holds GPU code: compiled for the architectures asked for (-gencode). */
  readonly gpuCode: boolean;
  /** Files outside its folder that are compiled into it too (shared with another library), relative to the package root. */
  readonly extraSources?: readonly string[];
  /** Public headers, relative to the package root, copied into the cache's include/ folder when it is built. */
  readonly headers?: readonly string[];
  /**
   * `bun run build` builds it only where its source folder exists (a copy of the package
   * without it still builds the others); asking for it by name without the folder fails.
   */
  readonly optional?: boolean;
}

export const NATIVE_TARGETS = [
  {
    name: "libgguf_vram",
    sourceDir: "cuda",
    compiled: [".cu"],
    included: [".h"],
    compileFlags: ["-O3", "-std=c++17", "-Xcompiler", "-fPIC,-fvisibility=hidden,-Wall"],
    // cudart statically: the library then needs only the driver (libcuda.so.1)
    linkFlags: ["-shared", "-cudart", "static"],
    gpuCode: true,
  },
  {
    // The C client for engines (cuda/client/gguf_vram_client.h): attaches to what `serve` keeps in VRAM.
    name: "libgguf_vram_client",
    sourceDir: "cuda/client",
    compiled: [".cu"],
    included: [".h"],
    extraSources: ["cuda/vmm.cu", "cuda/wire.cu"],
    alsoHashed: ["cuda/vmm.h", "cuda/wire.h"],
    headers: ["cuda/client/gguf_vram_client.h"],
    compileFlags: ["-O3", "-std=c++17", "-Xcompiler", "-fPIC,-fvisibility=hidden,-Wall"],
    linkFlags: ["-shared", "-cudart", "static"],
    gpuCode: false,
    optional: true,
  },
] as const satisfies readonly NativeTarget[];

export type TargetName = (typeof NATIVE_TARGETS)[number]["name"];

export function nativeTarget(name: TargetName): NativeTarget {
  return NATIVE_TARGETS.find((target) => target.name === name)!;
}
