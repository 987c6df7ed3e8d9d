/*
 * arena.cu — the one device allocation that holds a model's weights; tensors
 * are 256-byte-aligned offsets into it (cudaMalloc's base is 256-aligned).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

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

/* Records a failed driver call of a shareable arena; out of memory says what the device has. */
static int fail_vmm(CUresult rc, const char *call, uint64_t bytes) {
    if (rc == CUDA_ERROR_OUT_OF_MEMORY) return fail_alloc(cudaErrorMemoryAllocation, bytes);
    int status = rc == CUDA_ERROR_NO_DEVICE ? GV_ERR_NO_DEVICE : GV_ERR_CUDA;
    return gv_fail(status, "gv_arena_create: %s for a shareable arena of %.1f MiB failed: %s (CUresult %d)", call, GV_MIB(bytes),
                   gv_vmm_error_string(rc), (int)rc);
}

/* The devices that can reach `device` peer to peer: a shareable arena is mapped for them too, so
 * replicas can copy into it (peer access as cudaDeviceEnablePeerAccess grants does not cover VMM memory). */
static int reaching_peers(int device, int *peers, int max) {
    int count = 0, n = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
    for (int d = 0; d < count && n < max; d++) {
        int can = 0;
        if (d != device && cudaDeviceCanAccessPeer(&can, d, device) == cudaSuccess && can) peers[n++] = d;
    }
    cudaGetLastError();
    return n;
}

/* The device memory behind a new arena: one cudaMalloc, or one shareable allocation. */
static int allocate(gv_arena *arena, uint64_t bytes) {
    if (gv_fault_hit(GV_FAULT_DEVICE_ALLOC, arena->device))
        return GV_FAULT_FAIL(GV_FAULT_DEVICE_ALLOC, GV_ERR_OUT_OF_MEMORY, "cudaMalloc of %.1f MiB", GV_MIB(bytes));
    if (arena->flags & GV_ARENA_SHAREABLE) {
        const char *failed = "";
        uint64_t rounded = 0;
        CUresult rc = gv_vmm_round(arena->device, bytes, &rounded, &failed);
        int peers[64];
        int n_peers = reaching_peers(arena->device, peers, 64);
        if (rc == CUDA_SUCCESS) rc = gv_vmm_create(arena->device, rounded, peers, n_peers, &arena->vmm, &failed);
        if (rc != CUDA_SUCCESS) return fail_vmm(rc, failed, bytes);
        arena->ptr = (void *)(uintptr_t)arena->vmm.ptr;
        return GV_OK;
    }
    cudaError_t err = cudaMalloc(&arena->ptr, bytes);
    if (err == cudaSuccess) return GV_OK;
    return err == cudaErrorMemoryAllocation ? fail_alloc(err, bytes)
                                             : gv_fail_cuda(err, GV_ERR_OUT_OF_MEMORY, __FILE__, __LINE__, "cudaMalloc of %.1f MiB", GV_MIB(bytes));
}

/* Gives the device memory back; GV_OK, or the first failure of calls that were all made. */
static int release(gv_arena *arena) {
    if (!(arena->flags & GV_ARENA_SHAREABLE)) return GV_CHECK(cudaFree(arena->ptr), GV_ERR_CUDA);
    /* cudaFree waits for the device; unmapping does not, and no copy may still be writing. */
    int rc = GV_CHECK(cudaDeviceSynchronize(), GV_ERR_CUDA);
    const char *failed = "";
    CUresult vrc = gv_vmm_unmap(&arena->vmm, &failed);
    if (vrc != CUDA_SUCCESS && rc == GV_OK)
        rc = gv_fail(GV_ERR_CUDA, "gv_arena_free: %s failed: %s (CUresult %d)", failed, gv_vmm_error_string(vrc), (int)vrc);
    return rc;
}

extern "C" int gv_arena_create_ex(int device, uint64_t bytes, uint32_t flags, gv_arena **out) {
    GV_REQUIRE(out != NULL, "gv_arena_create: out is NULL");
    *out = NULL;
    GV_REQUIRE(bytes > 0, "gv_arena_create: bytes is 0");
    GV_REQUIRE((flags & ~(uint32_t)GV_ARENA_SHAREABLE) == 0, "gv_arena_create: unknown flags 0x%x", flags);
    int rc = gv_use_device("gv_arena_create", device);
    if (rc != GV_OK) return rc;

    gv_arena *arena = (gv_arena *)calloc(1, sizeof *arena);
    if (arena == NULL) return gv_fail(GV_ERR_HOST_MEMORY, "gv_arena_create: malloc of the arena handle failed");
    arena->device = device;
    arena->flags = flags;
    rc = allocate(arena, bytes);
    if (rc != GV_OK) {
        free(arena);
        return rc;
    }
    int poison = gv_poison_byte.load();
    if (poison >= 0) {
        /* cudaMemset is asynchronous on the legacy stream, and the stagers' streams are
         * non-blocking: without the wait, the fill can land after (over) the first copies. */
        cudaError_t err = cudaMemset(arena->ptr, poison, bytes);
        if (err == cudaSuccess) err = cudaStreamSynchronize(cudaStreamLegacy);
        if (err != cudaSuccess) {
            rc = gv_fail_cuda(err, GV_ERR_CUDA, __FILE__, __LINE__, "gv_arena_create: poisoning %.1f MiB", GV_MIB(bytes));
            release(arena);
            free(arena);
            return rc;
        }
    }
    arena->bytes = bytes;
    gv_live_counters.arenas.fetch_add(1);
    gv_live_counters.arena_bytes.fetch_add(bytes);
    *out = arena;
    return GV_OK;
}

extern "C" int gv_arena_create(int device, uint64_t bytes, gv_arena **out) { return gv_arena_create_ex(device, bytes, 0, out); }

extern "C" int gv_arena_free(gv_arena *arena) {
    if (arena == NULL) return GV_OK;
    if (gv_fault_hit(GV_FAULT_FREE_DEVICE, arena->device)) {
        GV_FAULT_FAIL(GV_FAULT_FREE_DEVICE, GV_ERR_NOT_FREED, "gv_arena_free: cudaSetDevice(%d)", arena->device);
        return GV_ERR_NOT_FREED;
    }
    cudaError_t err = cudaSetDevice(arena->device);
    if (err != cudaSuccess) {
        gv_fail_cuda(err, GV_ERR_CUDA, __FILE__, __LINE__, "gv_arena_free: cudaSetDevice(%d), so the arena of %.1f MiB was not freed",
                     arena->device, GV_MIB(arena->bytes));
        return GV_ERR_NOT_FREED;
    }
    int rc = release(arena);
    gv_live_counters.arenas.fetch_sub(1);
    gv_live_counters.arena_bytes.fetch_sub(arena->bytes);
    free(arena);
    return rc;
}

extern "C" int gv_arena_export(gv_arena *arena, int *fd) {
    GV_REQUIRE(fd != NULL, "gv_arena_export: fd is NULL");
    *fd = -1;
    GV_REQUIRE(arena != NULL, "gv_arena_export: arena is NULL");
    GV_REQUIRE(arena->flags & GV_ARENA_SHAREABLE, "gv_arena_export: the arena was not created GV_ARENA_SHAREABLE");
    GV_REQUIRE(!(arena->flags & GV_ARENA_IMPORTED), "gv_arena_export: the arena is another process's allocation (gv_arena_import)");
    const char *failed = "";
    CUresult rc = gv_vmm_export(&arena->vmm, fd, &failed);
    if (rc != CUDA_SUCCESS)
        return gv_fail(rc == CUDA_ERROR_NO_DEVICE ? GV_ERR_NO_DEVICE : GV_ERR_CUDA, "gv_arena_export: %s failed: %s (CUresult %d)", failed,
                       gv_vmm_error_string(rc), (int)rc);
    return GV_OK;
}

/* ─── another process's allocation ──────────────────────────────────────────── */

extern "C" int gv_arena_import(int fd, uint64_t alloc_bytes, uint64_t bytes, int device, gv_arena **out) {
    GV_REQUIRE(out != NULL, "gv_arena_import: out is NULL");
    *out = NULL;
    GV_REQUIRE(fd >= 0, "gv_arena_import: %d is not a descriptor", fd);
    GV_REQUIRE(bytes > 0 && bytes <= alloc_bytes, "gv_arena_import: an arena of %llu bytes in an allocation of %llu",
               (unsigned long long)bytes, (unsigned long long)alloc_bytes);
    int rc = gv_use_device("gv_arena_import", device);
    if (rc != GV_OK) return rc;

    gv_arena *arena = (gv_arena *)calloc(1, sizeof *arena);
    if (arena == NULL) return gv_fail(GV_ERR_HOST_MEMORY, "gv_arena_import: malloc of the arena handle failed");
    const char *failed = "";
    CUresult vrc = gv_vmm_import(fd, alloc_bytes, device, &arena->vmm, &failed);
    if (vrc != CUDA_SUCCESS) {
        free(arena);
        return gv_fail(vrc == CUDA_ERROR_NO_DEVICE ? GV_ERR_NO_DEVICE : GV_ERR_CUDA,
                       "gv_arena_import: %s for an allocation of %.1f MiB on device %d failed: %s (CUresult %d)", failed,
                       GV_MIB(alloc_bytes), device, gv_vmm_error_string(vrc), (int)vrc);
    }
    arena->device = device;
    arena->flags = GV_ARENA_SHAREABLE | GV_ARENA_IMPORTED; /* freed as a shareable arena is: unmapped */
    arena->ptr = (void *)(uintptr_t)arena->vmm.ptr;
    arena->bytes = bytes;
    gv_live_counters.arenas.fetch_add(1);
    gv_live_counters.arena_bytes.fetch_add(bytes);
    *out = arena;
    return GV_OK;
}

extern "C" int gv_close_fd(int fd) {
    GV_REQUIRE(fd >= 0, "gv_close_fd: %d is not a descriptor", fd);
    /* Linux frees the descriptor even when close reports EINTR: never close it twice. */
    if (close(fd) != 0 && errno != EINTR) return gv_fail_os(errno, GV_ERR_SOCKET, "gv_close_fd(%d)", fd);
    return GV_OK;
}

/* ─── getters ───────────────────────────────────────────────────────────────── */

extern "C" uint64_t gv_arena_device_ptr(const gv_arena *arena) { return arena ? (uint64_t)(uintptr_t)arena->ptr : 0; }
extern "C" uint64_t gv_arena_bytes(const gv_arena *arena) { return arena ? arena->bytes : 0; }
extern "C" uint64_t gv_arena_alloc_bytes(const gv_arena *arena) {
    return arena == NULL ? 0 : (arena->flags & GV_ARENA_SHAREABLE) ? arena->vmm.bytes : arena->bytes;
}
extern "C" int gv_arena_device(const gv_arena *arena) { return arena ? arena->device : -1; }
extern "C" int gv_arena_flags(const gv_arena *arena) { return arena ? (int)(arena->flags & GV_ARENA_SHAREABLE) : 0; }

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
