// The one dlopen of libgguf_vram.so: the symbol table of cuda/gguf_vram.h and
// nothing else. Every other module reaches the library through this one.

import { dlopen, FFIType, type Library } from "bun:ffi";
import { existsSync } from "node:fs";
import { CudaError } from "./errors.ts";

const { i32, u32, i64, u64, ptr, cstring, void: none } = FFIType;

const SYMBOLS = {
  gv_abi_version: { args: [], returns: i32 },
  gv_last_error: { args: [], returns: cstring },
  gv_last_cuda_error: { args: [], returns: i32 },
  gv_last_os_error: { args: [], returns: i32 },
  gv_versions: { args: [ptr, ptr], returns: i32 },

  gv_device_count: { args: [ptr], returns: i32 },
  gv_device_info_get: { args: [i32, ptr], returns: i32 },
  gv_device_init: { args: [i32], returns: i32 },
  gv_mem_info: { args: [i32, ptr, ptr], returns: i32 },

  gv_arena_create: { args: [i32, u64, ptr], returns: i32 },
  gv_arena_create_ex: { args: [i32, u64, u32, ptr], returns: i32 },
  gv_arena_alloc_bytes: { args: [ptr], returns: u64 },
  gv_arena_flags: { args: [ptr], returns: i32 },
  gv_arena_export: { args: [ptr, ptr], returns: i32 },
  gv_arena_device_ptr: { args: [ptr], returns: u64 },
  gv_arena_bytes: { args: [ptr], returns: u64 },
  gv_arena_device: { args: [ptr], returns: i32 },
  gv_arena_free: { args: [ptr], returns: i32 },
  gv_arena_read: { args: [ptr, u64, ptr, u64], returns: i32 },
  gv_arena_write: { args: [ptr, u64, ptr, u64], returns: i32 },
  gv_arena_import: { args: [i32, u64, u64, i32, ptr], returns: i32 },
  gv_close_fd: { args: [i32], returns: i32 },

  gv_pin: { args: [ptr, u64, i32], returns: i32 },
  gv_unpin: { args: [ptr], returns: i32 },

  gv_stager_create: { args: [i32, u32, u64, u32, ptr, ptr], returns: i32 },
  gv_stager_slot: { args: [ptr, u32], returns: ptr },
  gv_stager_slot_bytes: { args: [ptr], returns: u64 },
  gv_stager_slots: { args: [ptr], returns: u32 },
  gv_stager_wait: { args: [ptr, u32], returns: i32 },
  gv_stager_upload: { args: [ptr, u32, ptr, ptr, u32], returns: i32 },
  gv_stager_upload_from: { args: [ptr, u32, ptr, ptr, u64, u64], returns: i32 },
  gv_stager_sync: { args: [ptr], returns: i32 },
  gv_stager_free: { args: [ptr], returns: i32 },

  gv_upload_step: { args: [ptr, ptr, ptr, u32, ptr, ptr, u32, ptr, u32, ptr, ptr, ptr], returns: i32 },
  gv_checksum_file_step: { args: [ptr, u32, ptr, ptr, ptr, u64, u32, ptr, ptr], returns: i32 },

  gv_checksum_host: { args: [ptr, u64], returns: u64 },
  gv_checksum_host_partial: { args: [ptr, u64, u64], returns: u64 },
  gv_checksum_finish: { args: [u64, u64], returns: u64 },
  gv_checksum_device: { args: [ptr, ptr, u32, ptr], returns: i32 },

  gv_peer_enable: { args: [i32, i32, ptr], returns: i32 },
  gv_copy_start: { args: [ptr, ptr, u64, u64, ptr], returns: i32 },
  gv_copy_query: { args: [ptr, ptr], returns: i32 },
  gv_copy_free: { args: [ptr], returns: i32 },

  gv_ipc_listen: { args: [ptr, ptr], returns: i32 },
  gv_ipc_wait: { args: [ptr, i32, ptr, u64, ptr], returns: i32 },
  gv_ipc_send: { args: [ptr, u32, ptr, u64, ptr, u64, ptr, u32], returns: i32 },
  gv_ipc_disconnect: { args: [ptr, u32], returns: i32 },
  gv_ipc_stop: { args: [ptr], returns: i32 },
  gv_ipc_counts: { args: [ptr, ptr, ptr], returns: i32 },
  gv_ipc_free: { args: [ptr], returns: i32 },
  gv_ipc_connect: { args: [ptr, ptr], returns: i32 },
  gv_ipc_request: { args: [ptr, ptr, u64], returns: i32 },
  gv_ipc_poll: { args: [ptr, i32, ptr, ptr, ptr, ptr], returns: i32 },
  gv_ipc_take: { args: [ptr, ptr, ptr, ptr], returns: i32 },
  gv_ipc_close: { args: [ptr], returns: i32 },

  gv_measure_h2d: { args: [i32, u64, i32, i32, ptr], returns: i32 },
  gv_measure_h2d_many: { args: [ptr, i32, u64, i32, ptr], returns: i32 },
  gv_measure_read: { args: [i32, u64, i32, u64, ptr], returns: i32 },

  gv_live: { args: [ptr], returns: none },
  gv_fault_inject: { args: [i32, i64], returns: i32 },
  gv_fault_fired: { args: [i32], returns: i64 },
  gv_fault_reset: { args: [], returns: none },
  gv_fault_device: { args: [i32], returns: none },
  gv_debug_poison: { args: [i32], returns: none },
  gv_debug_upload_mode: { args: [i32], returns: none },
  gv_debug_block: { args: [i32, ptr, ptr], returns: i32 },
} as const;

export type NativeSymbols = Library<typeof SYMBOLS>["symbols"];

/** Must equal GV_ABI_VERSION in cuda/gguf_vram.h. */
export const ABI_VERSION = 5;

let loaded: { path: string; symbols: NativeSymbols } | null = null;

/**
 * The library's symbols, opened once per thread (each Worker opens its own handle
 * to the same .so; the library state is shared by the process). `path` is the
 * built library; the main thread gets it from build.ts's ensureNativeLibrary().
 */
export function openNative(path: string): NativeSymbols {
  if (loaded) {
    if (loaded.path !== path) throw new Error(`libgguf_vram is already open from ${loaded.path}`);
    return loaded.symbols;
  }
  if (!existsSync(path)) {
    throw new CudaError("NATIVE_LIBRARY", 0, 0, `the native library ${path} does not exist`, "build it with `bun run build` (needs the CUDA toolkit's nvcc)");
  }
  let lib: Library<typeof SYMBOLS>;
  try {
    lib = dlopen(path, SYMBOLS);
  } catch (e) {
    throw new CudaError("NATIVE_LIBRARY", 0, 0, `the native library ${path} cannot be loaded: ${(e as Error).message}`, "rebuild it with `bun run build --force`");
  }
  const abi = lib.symbols.gv_abi_version();
  if (abi !== ABI_VERSION) {
    lib.close();
    throw new CudaError("NATIVE_LIBRARY", 0, 0, `the native library speaks ABI ${abi}; these bindings need ${ABI_VERSION}`, "rebuild it with `bun run build --force`");
  }
  loaded = { path, symbols: lib.symbols };
  return lib.symbols;
}

/** The symbols of the library opened on this thread; throws when none was opened. */
export function native(): NativeSymbols {
  if (!loaded) throw new Error("libgguf_vram is not open on this thread: call openCuda() first");
  return loaded.symbols;
}

export function nativePath(): string | null {
  return loaded?.path ?? null;
}

