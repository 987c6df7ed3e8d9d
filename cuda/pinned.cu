/*
 * pinned.cu — page-locked host memory: gv_pin / gv_unpin of caller ranges, and
 * the page-aligned malloc + cudaHostRegister buffers of stagers and gv_measure_h2d.
 *
 * gv_unpin gets only a pointer, so pinned ranges live in a small table
 * (ptr → bytes) behind a mutex. cudaHostRegister of a large range takes tens of
 * milliseconds, so it runs outside the lock: the entry is reserved first
 * (PINNING), which also turns away a second pin of the same pointer meanwhile.
 */
#include <mutex>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

uint64_t gv_page_size(void) {
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (uint64_t)page : 4096;
}

uint64_t gv_page_round(uint64_t bytes) {
    uint64_t page = gv_page_size();
    if (bytes > UINT64_MAX - (page - 1)) return 0;
    return (bytes + page - 1) / page * page;
}

/* ─── the table of pinned ranges ────────────────────────────────────────────── */

enum pin_state { PINNING, PINNED, UNPINNING };

struct pin_entry {
    void *ptr;
    uint64_t bytes;
    pin_state state;
};

static std::mutex pins_lock;
static pin_entry *pins;
static size_t n_pins, cap_pins;

static pin_entry *find_pin(void *ptr) {
    for (size_t i = 0; i < n_pins; i++)
        if (pins[i].ptr == ptr) return &pins[i];
    return NULL;
}

static void remove_pin(void *ptr) {
    pin_entry *entry = find_pin(ptr);
    if (entry != NULL) *entry = pins[--n_pins];
}

/* ─── API ───────────────────────────────────────────────────────────────────── */

extern "C" int gv_pin(void *ptr, uint64_t bytes, int read_only) {
    GV_REQUIRE(ptr != NULL, "gv_pin: ptr is NULL");
    GV_REQUIRE(bytes > 0, "gv_pin: bytes is 0");
    {
        std::lock_guard<std::mutex> hold(pins_lock);
        if (find_pin(ptr) != NULL) return gv_fail(GV_ERR_INVALID_ARGUMENT, "gv_pin: %p is already pinned", ptr);
        if (n_pins == cap_pins) {
            size_t cap = cap_pins ? cap_pins * 2 : 64;
            pin_entry *grown = (pin_entry *)realloc(pins, cap * sizeof *grown);
            if (grown == NULL) return gv_fail(GV_ERR_HOST_MEMORY, "gv_pin: growing the table of pinned ranges failed");
            pins = grown;
            cap_pins = cap;
        }
        pins[n_pins++] = pin_entry{ptr, bytes, PINNING};
    }

    int rc = GV_OK;
    if (gv_fault_hit(GV_FAULT_HOST_PIN, -1)) {
        rc = GV_FAULT_FAIL(GV_FAULT_HOST_PIN, GV_ERR_HOST_MEMORY, "gv_pin: cudaHostRegister of %llu bytes (%.1f MiB) at %p",
                           (unsigned long long)bytes, GV_MIB(bytes), ptr);
    } else {
        /* Portable: pinned for every device's context, not just this thread's current one */
        unsigned flags = cudaHostRegisterPortable | (read_only ? cudaHostRegisterReadOnly : 0);
        cudaError_t err = cudaHostRegister(ptr, bytes, flags);
        if (err != cudaSuccess)
            rc = gv_fail_cuda(err, GV_ERR_HOST_MEMORY, __FILE__, __LINE__, "gv_pin: cudaHostRegister of %llu bytes (%.1f MiB) at %p%s",
                              (unsigned long long)bytes, GV_MIB(bytes), ptr, read_only ? ", read-only" : "");
    }

    std::lock_guard<std::mutex> hold(pins_lock);
    if (rc != GV_OK) {
        remove_pin(ptr);
        return rc;
    }
    find_pin(ptr)->state = PINNED;
    gv_count_pinned(1, (int64_t)bytes);
    return GV_OK;
}

extern "C" int gv_unpin(void *ptr) {
    GV_REQUIRE(ptr != NULL, "gv_unpin: ptr is NULL");
    uint64_t bytes;
    {
        std::lock_guard<std::mutex> hold(pins_lock);
        pin_entry *entry = find_pin(ptr);
        if (entry == NULL || entry->state != PINNED)
            return gv_fail(GV_ERR_INVALID_ARGUMENT, "gv_unpin: %p is not a range pinned with gv_pin%s", ptr,
                           entry ? " (it is being pinned or unpinned by another thread)" : "");
        entry->state = UNPINNING;
        bytes = entry->bytes;
    }

    int rc = GV_CHECK(cudaHostUnregister(ptr), GV_ERR_HOST_MEMORY);

    std::lock_guard<std::mutex> hold(pins_lock);
    if (rc != GV_OK) {
        find_pin(ptr)->state = PINNED; /* still registered: the caller may try again */
        return rc;
    }
    remove_pin(ptr);
    gv_count_pinned(-1, -(int64_t)bytes);
    return GV_OK;
}

/* ─── page-aligned pinned buffers ───────────────────────────────────────────── */

#define HUGE_PAGE (2ull << 20)

uint64_t gv_pinned_size(uint64_t bytes, bool huge) {
    if (!huge) return gv_page_round(bytes);
    if (bytes > UINT64_MAX - (HUGE_PAGE - 1)) return 0;
    return (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
}

/* *out = posix_memalign of gv_pinned_size(bytes, huge), registered with cudaHostRegister.
 * With `huge` the buffer is 2 MiB-aligned and asks for transparent huge pages (and is
 * touched first, so the pages are faulted in as such): fewer pages for the DMA engines and
 * the IOMMU to translate. `fault` lets GV_FAULT_HOST_PIN fail it (for `device`). Not counted here. */
int gv_pinned_alloc(const char *fn, uint64_t bytes, bool fault, int device, bool huge, void **out) {
    *out = NULL;
    uint64_t rounded = gv_pinned_size(bytes, huge);
    if (rounded == 0) return gv_fail(GV_ERR_INVALID_ARGUMENT, "%s: %llu bytes cannot be page-aligned", fn, (unsigned long long)bytes);
    void *ptr = NULL;
    if (posix_memalign(&ptr, huge ? HUGE_PAGE : gv_page_size(), rounded) != 0)
        return gv_fail(GV_ERR_HOST_MEMORY, "%s: malloc of %.1f MiB of host memory failed", fn, GV_MIB(rounded));
    if (huge) {
        madvise(ptr, rounded, MADV_HUGEPAGE); /* advice only: without THP the buffer is ordinary pages */
        memset(ptr, 0, rounded);
    }
    if (fault && gv_fault_hit(GV_FAULT_HOST_PIN, device)) {
        free(ptr);
        return GV_FAULT_FAIL(GV_FAULT_HOST_PIN, GV_ERR_HOST_MEMORY, "%s: cudaHostRegister of %.1f MiB", fn, GV_MIB(rounded));
    }
    cudaError_t err = cudaHostRegister(ptr, rounded, cudaHostRegisterDefault);
    if (err != cudaSuccess) {
        free(ptr);
        return gv_fail_cuda(err, GV_ERR_HOST_MEMORY, __FILE__, __LINE__, "%s: cudaHostRegister of %.1f MiB", fn, GV_MIB(rounded));
    }
    *out = ptr;
    return GV_OK;
}

/* Unregisters and frees a gv_pinned_alloc buffer; frees it even when unregistering fails. */
int gv_pinned_release(void *ptr) {
    if (ptr == NULL) return GV_OK;
    int rc = GV_CHECK(cudaHostUnregister(ptr), GV_ERR_HOST_MEMORY);
    free(ptr);
    return rc;
}
