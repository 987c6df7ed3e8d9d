/*
 * arena.cu — the one device allocation that holds a model's weights; tensors
 * are 256-byte-aligned offsets into it (cudaMalloc's base is 256-aligned).
 */
#include <stdlib.h>

#include "internal.h"

/* ─── create / free ─────────────────────────────────────────────────────────── */

/* Records an out-of-memory message with what was asked and what the device has. */
static int fail_alloc(cudaError_t err, uint64_t bytes) {
    size_t free_bytes = 0, total_bytes = 0;
    bool known = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
    cudaGetLastError();
    if (!known) return gv_fail_cuda(err, GV_ERR_OUT_OF_MEMORY, __FILE__, __LINE__, "cudaMalloc of %.1f MiB", GV_MIB(bytes));
    return gv_fail_cuda(err, GV_ERR_OUT_OF_MEMORY, __FILE__, __LINE__,
                        "cudaMalloc of %.1f MiB (device has %.1f MiB free of %.1f MiB, %.1f MiB in use)", GV_MIB(bytes),
                        GV_MIB(free_bytes), GV_MIB(total_bytes), GV_MIB(total_bytes - free_bytes));
}

extern "C" int gv_arena_create(int device, uint64_t bytes, gv_arena **out) {
    GV_REQUIRE(out != NULL, "gv_arena_create: out is NULL");
    *out = NULL;
    GV_REQUIRE(bytes > 0, "gv_arena_create: bytes is 0");
    int rc = gv_use_device("gv_arena_create", device);
    if (rc != GV_OK) return rc;

    gv_arena *arena = (gv_arena *)calloc(1, sizeof *arena);
    if (arena == NULL) return gv_fail(GV_ERR_HOST_MEMORY, "gv_arena_create: malloc of the arena handle failed");
    if (gv_fault_hit(GV_FAULT_DEVICE_ALLOC, device)) {
        free(arena);
        return GV_FAULT_FAIL(GV_FAULT_DEVICE_ALLOC, GV_ERR_OUT_OF_MEMORY, "cudaMalloc of %.1f MiB", GV_MIB(bytes));
    }
    cudaError_t err = cudaMalloc(&arena->ptr, bytes);
    if (err != cudaSuccess) {
        free(arena);
        return err == cudaErrorMemoryAllocation ? fail_alloc(err, bytes)
                                                 : gv_fail_cuda(err, GV_ERR_OUT_OF_MEMORY, __FILE__, __LINE__,
                                                                "cudaMalloc of %.1f MiB", GV_MIB(bytes));
    }
    int poison = gv_poison_byte.load();
    if (poison >= 0) {
        /* cudaMemset is asynchronous on the legacy stream, and the stagers' streams are
         * non-blocking: without the wait, the fill can land after (over) the first copies. */
        err = cudaMemset(arena->ptr, poison, bytes);
        if (err == cudaSuccess) err = cudaStreamSynchronize(cudaStreamLegacy);
        if (err != cudaSuccess) {
            cudaFree(arena->ptr);
            free(arena);
            return gv_fail_cuda(err, GV_ERR_CUDA, __FILE__, __LINE__, "gv_arena_create: poisoning %.1f MiB", GV_MIB(bytes));
        }
    }
    arena->device = device;
    arena->bytes = bytes;
    gv_live_counters.arenas.fetch_add(1);
    gv_live_counters.arena_bytes.fetch_add(bytes);
    *out = arena;
    return GV_OK;
}

/* The arena is gone when this returns, even when cudaFree reports an error
 * (a sticky error from earlier work): the status only tells about it. */
extern "C" int gv_arena_free(gv_arena *arena) {
    if (arena == NULL) return GV_OK;
    int rc = GV_CHECK(cudaSetDevice(arena->device), GV_ERR_CUDA);
    if (rc == GV_OK) rc = GV_CHECK(cudaFree(arena->ptr), GV_ERR_CUDA);
    gv_live_counters.arenas.fetch_sub(1);
    gv_live_counters.arena_bytes.fetch_sub(arena->bytes);
    free(arena);
    return rc;
}

/* ─── getters ───────────────────────────────────────────────────────────────── */

extern "C" uint64_t gv_arena_device_ptr(const gv_arena *arena) { return arena ? (uint64_t)(uintptr_t)arena->ptr : 0; }
extern "C" uint64_t gv_arena_bytes(const gv_arena *arena) { return arena ? arena->bytes : 0; }
extern "C" int gv_arena_device(const gv_arena *arena) { return arena ? arena->device : -1; }

/* ─── synchronous copies ────────────────────────────────────────────────────── */

int gv_arena_check_range(const char *fn, const gv_arena *arena, uint64_t offset, uint64_t bytes) {
    if (gv_out_of_range(offset, bytes, arena->bytes)) {
        return gv_fail(GV_ERR_INVALID_ARGUMENT,
                       "%s: range [%llu, %llu + %llu) is outside the arena of %llu bytes", fn,
                       (unsigned long long)offset, (unsigned long long)offset, (unsigned long long)bytes,
                       (unsigned long long)arena->bytes);
    }
    return GV_OK;
}

extern "C" int gv_arena_read(gv_arena *arena, uint64_t offset, void *dst, uint64_t bytes) {
    GV_REQUIRE(arena != NULL, "gv_arena_read: arena is NULL");
    GV_REQUIRE(dst != NULL || bytes == 0, "gv_arena_read: dst is NULL");
    int rc = gv_arena_check_range("gv_arena_read", arena, offset, bytes);
    if (rc != GV_OK || bytes == 0) return rc;
    GV_CUDA(cudaSetDevice(arena->device), GV_ERR_CUDA);
    GV_CUDA(cudaMemcpy(dst, (char *)arena->ptr + offset, bytes, cudaMemcpyDeviceToHost), GV_ERR_COPY);
    return GV_OK;
}

extern "C" int gv_arena_write(gv_arena *arena, uint64_t offset, const void *src, uint64_t bytes) {
    GV_REQUIRE(arena != NULL, "gv_arena_write: arena is NULL");
    GV_REQUIRE(src != NULL || bytes == 0, "gv_arena_write: src is NULL");
    int rc = gv_arena_check_range("gv_arena_write", arena, offset, bytes);
    if (rc != GV_OK || bytes == 0) return rc;
    GV_CUDA(cudaSetDevice(arena->device), GV_ERR_CUDA);
    GV_CUDA(cudaMemcpy((char *)arena->ptr + offset, src, bytes, cudaMemcpyHostToDevice), GV_ERR_COPY);
    return GV_OK;
}
