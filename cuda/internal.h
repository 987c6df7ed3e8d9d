/*
 * internal.h — what the library's files share and the API does not show: the
 * thread-local last error, the CUDA_CHECK-style macros, device selection, the
 * live counters (the one ledger of what the library holds) and fault injection.
 * Nothing here is exported: the library is built with -fvisibility=hidden.
 */
#ifndef GGUF_VRAM_INTERNAL_H
#define GGUF_VRAM_INTERNAL_H

#include <atomic>
#include <stdint.h>

#include <cuda_runtime.h>

#include "gguf_vram.h"
#include "vmm.h"

#define GV_MIB(bytes) ((double)(bytes) / (1024.0 * 1024.0))

/* ─── errors (errors.cu) ────────────────────────────────────────────────────── */

/* Records a message as this thread's last error, with cuda error 0, and returns status. */
int gv_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records "<what> failed: <string> (<name>, <code>) at <file>:<line>", clears the
 * non-sticky error (cudaGetLastError) and returns gv_cuda_status(err, status). */
int gv_fail_cuda(cudaError_t err, int status, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Records "<what>: <strerror(os_error)>" with errno os_error (gv_last_os_error) and returns status. */
int gv_fail_os(int os_error, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The gv_status for a CUDA error: driver / device-availability errors are
 * GV_ERR_NO_DEVICE, cudaErrorInvalidDevice is GV_ERR_BAD_DEVICE, an allocation
 * failure is GV_ERR_OUT_OF_MEMORY (or `status` when that is GV_ERR_HOST_MEMORY);
 * anything else is `status`, the caller's category (GV_ERR_COPY, GV_ERR_CUDA, …). */
int gv_cuda_status(cudaError_t err, int status);

/* GV_OK when the call succeeded, else the recorded failure's status. */
static inline int gv_check(cudaError_t err, int status, const char *what, const char *file, int line) {
    if (err == cudaSuccess) return GV_OK;
    return gv_fail_cuda(err, status, file, line, "%s", what);
}

/* rc = GV_CHECK(cudaFoo(...), GV_ERR_COPY): for paths that must clean up before returning. */
#define GV_CHECK(call, status) gv_check((call), (status), #call, __FILE__, __LINE__)

/* GV_CUDA(cudaFoo(...), GV_ERR_CUDA): returns the failure's status from the enclosing function. */
#define GV_CUDA(call, status)                         \
    do {                                              \
        int gv_rc_ = GV_CHECK(call, status);          \
        if (gv_rc_ != GV_OK) return gv_rc_;           \
    } while (0)

/* Checks a bare argument: GV_REQUIRE(arena != NULL, "gv_arena_read: arena is NULL"). */
#define GV_REQUIRE(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) return gv_fail(GV_ERR_INVALID_ARGUMENT, __VA_ARGS__);     \
    } while (0)

/* true when offset + bytes overflows or passes limit. */
static inline bool gv_out_of_range(uint64_t offset, uint64_t bytes, uint64_t limit) {
    return offset > limit || bytes > limit - offset;
}

/* ─── gates (gguf_vram.h) ─────────────────────────────────────────────────── */

/* Enters `gate` (NULL: no gate); false when it was retired. */
static inline bool gv_gate_enter(int32_t *gate) {
    if (gate == NULL) return true;
    int32_t idle = GV_GATE_IDLE;
    return __atomic_compare_exchange_n(gate, &idle, GV_GATE_INSIDE, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static inline int gv_gate_leave(int32_t *gate, int rc) {
    if (gate != NULL) __atomic_store_n(gate, GV_GATE_IDLE, __ATOMIC_SEQ_CST);
    return rc;
}

/* ─── handles ─────────────────────────────────────────────────────────────── */

/* An arena flag the API does not show: the mapping of another process's allocation (gv_arena_import),
 * unmapped by gv_arena_free like a shareable arena's, never exported again nor poisoned. */
#define GV_ARENA_IMPORTED 0x80000000u

struct gv_arena {
    int device;
    uint32_t flags; /* gv_arena_flags, and GV_ARENA_IMPORTED */
    void *ptr;      /* cudaMalloc'd, or the start of the shareable mapping; 256-byte aligned either way */
    uint64_t bytes; /* as asked */
    gv_vmm_mapping vmm; /* GV_ARENA_SHAREABLE: the allocation (its bytes rounded up to the granularity) */
};

struct gv_stager {
    int device;
    cudaStream_t stream;
    uint32_t slots;
    uint32_t next_slot;   /* the slot gv_upload_step fills next: the ring turns across calls */
    uint64_t slot_bytes;  /* as asked */
    void *ring;           /* one gv_pinned_alloc block: slot i starts at i × slot_bytes rounded up to pages */
    uint64_t ring_bytes;  /* what the block registers */
    void **host;          /* each slot's start in the ring */
    cudaEvent_t *events;  /* one per slot, recorded after the slot's copies */
    bool *recorded;       /* whether the slot's event was ever recorded */
};

/* GV_OK when [offset, offset + bytes) lies inside the arena, else records why. */
int gv_arena_check_range(const char *fn, const gv_arena *arena, uint64_t offset, uint64_t bytes);

/* ─── sockets (ipc.cu, ipc_client.cu) ──────────────────────────────────────── */

struct gv_wire_status;

/* Records a failure of wire.cu's (a gv_wire_result other than GV_WIRE_OK) as `fn`'s and returns its
 * gv_status: GV_ERR_DISCONNECTED, GV_ERR_PROTOCOL, GV_ERR_SOCKET (with errno) or GV_ERR_HOST_MEMORY. */
int gv_fail_wire(const char *fn, int wire_result, const struct gv_wire_status *why);

/* ─── devices (device.cu) ───────────────────────────────────────────────────── */

/* Checks `device` against cudaGetDeviceCount (GV_ERR_BAD_DEVICE when outside it)
 * and makes it this thread's current device. `fn` names the caller for messages. */
int gv_use_device(const char *fn, int device);

/* ─── the ledger and fault injection (faults.cu) ────────────────────────────── */

struct gv_counters {
    std::atomic<uint64_t> arenas, arena_bytes;
    std::atomic<uint64_t> pinned_ranges, pinned_bytes;
    std::atomic<uint64_t> stagers;
    std::atomic<uint64_t> copies;
};
extern gv_counters gv_live_counters;

static inline void gv_count_pinned(int64_t ranges, int64_t bytes) {
    gv_live_counters.pinned_ranges.fetch_add((uint64_t)ranges);
    gv_live_counters.pinned_bytes.fetch_add((uint64_t)bytes);
}

/* true exactly on the k-th call of `kind` for `device` after gv_fault_inject(kind, k),
 * which also disarms the kind; false otherwise. Calls for other devices than the one
 * gv_fault_device chose do not count (device -1: a call not tied to one device). */
bool gv_fault_hit(int kind, int device);

/* The byte new arenas are filled with (gv_debug_poison), or -1. */
extern std::atomic<int> gv_poison_byte;

/* "GV_FAULT_COPY", … for messages. */
const char *gv_fault_name(int kind);

/* Records "<what> failed: injected fault (GV_FAULT_…)" and returns status. */
#define GV_FAULT_FAIL(kind, status, what_fmt, ...) \
    gv_fail((status), what_fmt " failed: injected fault (%s)", ##__VA_ARGS__, gv_fault_name(kind))

/* ─── pinned host memory (pinned.cu) ────────────────────────────────────────── */

/* The host page size (sysconf), and bytes rounded up to it (0 on overflow). */
uint64_t gv_page_size(void);
uint64_t gv_page_round(uint64_t bytes);

/* What gv_pinned_alloc registers for `bytes`: whole pages, or whole 2 MiB huge pages (0 on overflow). */
uint64_t gv_pinned_size(uint64_t bytes, bool huge);

/* *out = a page-aligned host buffer of gv_pinned_size(bytes, huge) bytes, locked with
 * cudaHostRegister (huge: 2 MiB-aligned, transparent huge pages asked for); `fault` lets
 * GV_FAULT_HOST_PIN fail it for `device`. Not counted: the caller counts what it keeps. */
int gv_pinned_alloc(const char *fn, uint64_t bytes, bool fault, int device, bool huge, void **out);

/* Unregisters and frees a gv_pinned_alloc buffer (frees it even on error). */
int gv_pinned_release(void *ptr);

#endif /* GGUF_VRAM_INTERNAL_H */
