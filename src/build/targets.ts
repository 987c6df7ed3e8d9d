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
] as const satisfies readonly NativeTarget[];

export type TargetName = (typeof NATIVE_TARGETS)[number]["name"];

export function nativeTarget(name: TargetName): NativeTarget {
  return NATIVE_TARGETS.find((target) => target.name === name)!;
}
