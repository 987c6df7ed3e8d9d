/*
 * gguf_vram.h — the whole C API of libgguf_vram, the GPU half of gguf-vram.
 *
 * The TypeScript side (src/cuda/) reads files and decides what goes where; this
 * library owns every CUDA call: devices, the one device allocation that holds a
 * model's weights (the arena), pinned staging buffers with asynchronous
 * host-to-device copies, and GPU checksums that prove VRAM holds the file's bytes.
 *
 * Rules:
 *  - Every function returns an int status (GV_OK = 0) unless it is a plain getter.
 *    On failure it records a message in a thread-local buffer (gv_last_error) and
 *    frees whatever it took before returning. It never exits, aborts or prints.
 *  - Handles are opaque. Each *_create has a *_free; *_free(NULL) is a no-op.
 *  - All sizes and offsets are bytes, as uint64_t. Device pointers are returned as
 *    uint64_t so a caller can pass them around without dereferencing them.
 *  - Thread-safe: any thread may call any function (the CUDA runtime is
 *    thread-safe); a stager is used by one thread at a time.
 */
#ifndef GGUF_VRAM_H
#define GGUF_VRAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GV_API __attribute__((visibility("default")))

#define GV_ABI_VERSION 1

/* ─── status codes ──────────────────────────────────────────────────────────── */

enum gv_status {
    GV_OK = 0,
    GV_ERR_INVALID_ARGUMENT = 1, /* a caller bug: NULL handle, range outside the arena, … */
    GV_ERR_NO_DEVICE = 2,        /* no CUDA device, or no usable driver (cudaErrorNoDevice, cudaErrorInsufficientDriver) */
    GV_ERR_BAD_DEVICE = 3,       /* device index out of range */
    GV_ERR_OUT_OF_MEMORY = 4,    /* a device allocation failed */
    GV_ERR_HOST_MEMORY = 5,      /* malloc or cudaHostRegister failed */
    GV_ERR_COPY = 6,             /* a copy, stream or event operation failed */
    GV_ERR_CUDA = 7,             /* any other CUDA error */
};

/* The library's ABI version (GV_ABI_VERSION), to check the .so matches the bindings. */
GV_API int gv_abi_version(void);

/* The message of the last failure on this thread ("" when none). Valid until the next call on this thread.
 * A successful call does not clear it: it tells the last failure until the next one replaces it. */
GV_API const char *gv_last_error(void);

/* The cudaError_t behind the last failure on this thread (0 when the failure was not a CUDA error,
 * injected faults included). */
GV_API int gv_last_cuda_error(void);

/* CUDA runtime and driver versions (e.g. 13000); driver is 0 when no driver is installed. */
GV_API int gv_versions(int *runtime, int *driver);

/* ─── devices ───────────────────────────────────────────────────────────────── */

GV_API int gv_device_count(int *count);

typedef struct gv_device_info {
    char name[256];
    int major, minor;          /* compute capability */
    int multiprocessors;
    int pci_bus, pci_device, pci_domain;
    uint64_t total_bytes;      /* device memory */
    uint64_t free_bytes;       /* free now (cudaMemGetInfo) */
} gv_device_info;

GV_API int gv_device_info_get(int device, gv_device_info *out);

/* Create the device's primary context now (it takes 300+ ms on a large GPU), so a
 * caller can overlap it with other work. Later calls return at once. */
GV_API int gv_device_init(int device);

/* cudaMemGetInfo for the device. */
GV_API int gv_mem_info(int device, uint64_t *free_bytes, uint64_t *total_bytes);

/* ─── the arena: one device allocation that holds a model ──────────────────── */

typedef struct gv_arena gv_arena;

/* One cudaMalloc of `bytes` on `device`. Tensors live at 256-byte-aligned offsets in it. */
GV_API int gv_arena_create(int device, uint64_t bytes, gv_arena **out);
GV_API uint64_t gv_arena_device_ptr(const gv_arena *arena);
GV_API uint64_t gv_arena_bytes(const gv_arena *arena);
GV_API int gv_arena_device(const gv_arena *arena);
/* The arena is freed and uncounted even when cudaFree reports an (earlier, sticky) error. */
GV_API int gv_arena_free(gv_arena *arena);

/* Synchronous copies, for tests and small reads: device range → host, host → device. */
GV_API int gv_arena_read(gv_arena *arena, uint64_t offset, void *dst, uint64_t bytes);
GV_API int gv_arena_write(gv_arena *arena, uint64_t offset, const void *src, uint64_t bytes);

/* ─── pinned host memory ────────────────────────────────────────────────────── */

/* Page-locks an existing host range (cudaHostRegister) so copies from it run at
 * full PCIe speed. read_only != 0 adds cudaHostRegisterReadOnly, which allows
 * registering a read-only mapping such as an mmap of a file. */
GV_API int gv_pin(void *ptr, uint64_t bytes, int read_only);
GV_API int gv_unpin(void *ptr);

/* ─── the stager: pinned slots and a stream for async uploads ──────────────── */

typedef struct gv_stager gv_stager;

/* `slots` host buffers of `slot_bytes` each (page-aligned malloc + cudaHostRegister,
 * which is far cheaper to set up than cudaMallocHost), one event per slot and one
 * non-blocking stream, on `device`. */
GV_API int gv_stager_create(int device, uint32_t slots, uint64_t slot_bytes, gv_stager **out);

/* Host address of slot `slot`; NULL when out of range. */
GV_API void *gv_stager_slot(gv_stager *stager, uint32_t slot);
GV_API uint64_t gv_stager_slot_bytes(const gv_stager *stager);
GV_API uint32_t gv_stager_slots(const gv_stager *stager);

/* Blocks until every copy enqueued from `slot` has finished, so the slot can be refilled. */
GV_API int gv_stager_wait(gv_stager *stager, uint32_t slot);

/* Enqueues copies from slot `slot` into the arena, then records the slot's event.
 * `pieces` holds n_pieces triples (offset in the slot, offset in the arena, bytes).
 * Every piece is checked against the slot and the arena before anything is enqueued. */
GV_API int gv_stager_upload(gv_stager *stager, uint32_t slot, gv_arena *arena,
                            const uint64_t *pieces, uint32_t n_pieces);

/* Enqueues one copy from any host address (pinned or not) into the arena on the
 * stager's stream, and records an event in slot `slot` (to wait on with gv_stager_wait). */
GV_API int gv_stager_upload_from(gv_stager *stager, uint32_t slot, const void *src,
                                 gv_arena *arena, uint64_t arena_offset, uint64_t bytes);

/* Blocks until all work on the stager's stream has finished. */
GV_API int gv_stager_sync(gv_stager *stager);
/* Drains the stream, then frees everything; the stager is gone even when that reports an error.
 * When gv_stager_upload* fails part-way, it drains the stream before returning, so no copy
 * from the slot is left in flight. */
GV_API int gv_stager_free(gv_stager *stager);

/* ─── checksums: proof that VRAM holds the file's bytes ─────────────────────── */

/* A 64-bit checksum of a byte range, the same on host and device:
 *   words w_i = the range as little-endian uint64, the last one zero-padded;
 *   sum = Σ mix64(w_i ^ (i * 0x9E3779B97F4A7C15))  (mod 2^64);
 *   checksum = mix64(sum ^ bytes)
 * where mix64 is splitmix64's finalizer. mix64 is a bijection, so changing any one
 * word always changes the sum; the index makes moved words count too. */
GV_API uint64_t gv_checksum_host(const void *data, uint64_t bytes);

/* The checksum in pieces, for ranges read in chunks: the raw sum over `data`, whose
 * first byte is word `first_word` of the whole range (so a piece must start on an
 * 8-byte boundary of the range, and only the last piece may end off one). Add the
 * pieces' sums (mod 2^64), then gv_checksum_finish(sum, total bytes). */
GV_API uint64_t gv_checksum_host_partial(const void *data, uint64_t bytes, uint64_t first_word);
GV_API uint64_t gv_checksum_finish(uint64_t sum, uint64_t bytes);

/* Checksums of n ranges of the arena, computed on the GPU. `ranges` holds n pairs
 * (offset, bytes); each offset must be 8-byte aligned. It runs on the legacy default
 * stream, which does not wait for a stager's non-blocking stream: gv_stager_sync first. */
GV_API int gv_checksum_device(gv_arena *arena, const uint64_t *ranges, uint32_t n, uint64_t *out);

/* ─── measurement ───────────────────────────────────────────────────────────── */

/* Host-to-device cudaMemcpy bandwidth for a `bytes` buffer, median of `reps` timed
 * copies after one warm-up: pinned (malloc + cudaHostRegister) or pageable. */
GV_API int gv_measure_h2d(int device, uint64_t bytes, int pinned, int reps, double *gb_per_s);

/* ─── accounting and fault injection, for tests ─────────────────────────────── */

/* What the library holds now, across all threads: arenas and their bytes, pinned
 * ranges and their bytes (stager slots and gv_pin), stagers. A stager slot counts its
 * slot_bytes rounded up to whole host pages (what it registers); gv_pin counts `bytes`. */
typedef struct gv_live_counts {
    uint64_t arenas, arena_bytes;
    uint64_t pinned_ranges, pinned_bytes;
    uint64_t stagers;
} gv_live_counts;

GV_API void gv_live(gv_live_counts *out);

enum gv_fault {
    GV_FAULT_DEVICE_ALLOC = 0, /* gv_arena_create's cudaMalloc → GV_ERR_OUT_OF_MEMORY */
    GV_FAULT_HOST_PIN = 1,     /* cudaHostRegister in gv_stager_create / gv_pin → GV_ERR_HOST_MEMORY */
    GV_FAULT_COPY = 2,         /* cudaMemcpyAsync in gv_stager_upload* → GV_ERR_COPY */
    GV_FAULT_EVENT = 3,        /* cudaEventRecord / cudaEventSynchronize → GV_ERR_COPY */
    GV_FAULT_KINDS = 4,
};

/* Makes the k-th call (1-based, counted from now, across threads) of that kind fail as
 * if CUDA had failed, with "injected fault" in the message. k <= 0 disarms the kind. */
GV_API int gv_fault_inject(int kind, int64_t k);
GV_API void gv_fault_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* GGUF_VRAM_H */
