/*
 * stager.cu — a ring of pinned host slots, one event per slot and one
 * non-blocking stream, for asynchronous host-to-device uploads into an arena.
 *
 * The caller fills a slot, enqueues its pieces (gv_stager_upload, which records
 * the slot's event), and before refilling it waits on the slot (gv_stager_wait).
 * When enqueueing fails half-way the stream is drained before returning, so no
 * copy from the slot is still in flight when the caller sees the error.
 */
#include <stdlib.h>

#include "internal.h"

/* ─── create / free ─────────────────────────────────────────────────────────── */

/* Frees whatever a (partly) built stager holds. Records nothing, so a failed
 * create keeps its own message; returns the first CUDA error and names its call. */
static cudaError_t release(gv_stager *s, const char **failed_call) {
    cudaError_t first = cudaSuccess;
#define KEEP(call)                                                        \
    do {                                                                  \
        cudaError_t err_ = (call);                                        \
        if (err_ != cudaSuccess && first == cudaSuccess) {                \
            first = err_;                                                 \
            *failed_call = #call;                                         \
        }                                                                 \
    } while (0)
    for (uint32_t i = 0; i < s->slots; i++)
        if (s->events != NULL && s->events[i] != NULL) KEEP(cudaEventDestroy(s->events[i]));
    if (s->ring != NULL) {
        KEEP(cudaHostUnregister(s->ring));
        free(s->ring);
        gv_count_pinned(-1, -(int64_t)s->ring_bytes);
    }
    if (s->stream != NULL) KEEP(cudaStreamDestroy(s->stream));
#undef KEEP
    cudaGetLastError();
    free(s->host);
    free(s->events);
    free(s->recorded);
    free(s);
    return first;
}

static int stager_create(int device, uint32_t slots, uint64_t slot_bytes, uint32_t flags, gv_stager **out) {
    GV_REQUIRE(out != NULL, "gv_stager_create: out is NULL");
    *out = NULL;
    GV_REQUIRE(slots > 0, "gv_stager_create: slots is 0");
    GV_REQUIRE(slot_bytes > 0, "gv_stager_create: slot_bytes is 0");
    GV_REQUIRE((flags & ~(uint32_t)GV_STAGER_HUGE_PAGES) == 0, "gv_stager_create: unknown flags 0x%x", flags);
    uint64_t stride = gv_page_round(slot_bytes);
    GV_REQUIRE(stride != 0 && stride <= UINT64_MAX / 2 / slots, "gv_stager_create: %u slots of %llu bytes overflow", slots,
               (unsigned long long)slot_bytes);
    int rc = gv_use_device("gv_stager_create", device);
    if (rc != GV_OK) return rc;

    gv_stager *s = (gv_stager *)calloc(1, sizeof *s);
    if (s == NULL) return gv_fail(GV_ERR_HOST_MEMORY, "gv_stager_create: malloc of the stager handle failed");
    s->device = device;
    s->slots = slots;
    s->slot_bytes = slot_bytes;
    s->host = (void **)calloc(slots, sizeof *s->host);
    s->events = (cudaEvent_t *)calloc(slots, sizeof *s->events);
    s->recorded = (bool *)calloc(slots, sizeof *s->recorded);
    if (s->host == NULL || s->events == NULL || s->recorded == NULL) {
        const char *ignored;
        release(s, &ignored);
        return gv_fail(GV_ERR_HOST_MEMORY, "gv_stager_create: malloc of the tables for %u slots failed", slots);
    }

    /* The ring is one registered block, the slots page-aligned strides of it. */
    bool huge = (flags & GV_STAGER_HUGE_PAGES) != 0;
    rc = GV_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), GV_ERR_CUDA);
    if (rc == GV_OK) rc = gv_pinned_alloc("gv_stager_create", stride * slots, true, device, huge, &s->ring);
    if (rc == GV_OK) {
        s->ring_bytes = gv_pinned_size(stride * slots, huge);
        gv_count_pinned(1, (int64_t)s->ring_bytes);
    }
    for (uint32_t i = 0; i < slots && rc == GV_OK; i++) {
        s->host[i] = (char *)s->ring + (uint64_t)i * stride;
        rc = GV_CHECK(cudaEventCreateWithFlags(&s->events[i], cudaEventDisableTiming), GV_ERR_CUDA);
    }
    if (rc != GV_OK) {
        const char *ignored;
        release(s, &ignored); /* the creation error stays the recorded one */
        return rc;
    }
    gv_live_counters.stagers.fetch_add(1);
    *out = s;
    return GV_OK;
}

extern "C" int gv_stager_create(int device, uint32_t slots, uint64_t slot_bytes, uint32_t flags, gv_stager **out, int32_t *gate) {
    if (!gv_gate_enter(gate)) return gv_fail(GV_ERR_CANCELLED, "gv_stager_create: this thread was retired");
    return gv_gate_leave(gate, stager_create(device, slots, slot_bytes, flags, out));
}

/* The stager is gone when this returns, even when draining its stream reports an
 * error (from an earlier copy): the status only tells about it. */
extern "C" int gv_stager_free(gv_stager *stager) {
    if (stager == NULL) return GV_OK;
    int rc = GV_CHECK(cudaSetDevice(stager->device), GV_ERR_CUDA);
    if (rc == GV_OK) rc = GV_CHECK(cudaStreamSynchronize(stager->stream), GV_ERR_COPY);
    const char *failed_call = "";
    cudaError_t err = release(stager, &failed_call);
    gv_live_counters.stagers.fetch_sub(1);
    if (rc == GV_OK && err != cudaSuccess) rc = gv_fail_cuda(err, GV_ERR_CUDA, __FILE__, __LINE__, "gv_stager_free: %s", failed_call);
    return rc;
}

/* ─── getters ───────────────────────────────────────────────────────────────── */

extern "C" void *gv_stager_slot(gv_stager *stager, uint32_t slot) {
    return stager != NULL && slot < stager->slots ? stager->host[slot] : NULL;
}
extern "C" uint64_t gv_stager_slot_bytes(const gv_stager *stager) { return stager ? stager->slot_bytes : 0; }
extern "C" uint32_t gv_stager_slots(const gv_stager *stager) { return stager ? stager->slots : 0; }

/* ─── uploads ───────────────────────────────────────────────────────────────── */

static int check_target(const char *fn, gv_stager *stager, uint32_t slot, gv_arena *arena) {
    GV_REQUIRE(stager != NULL, "%s: stager is NULL", fn);
    GV_REQUIRE(arena != NULL, "%s: arena is NULL", fn);
    GV_REQUIRE(slot < stager->slots, "%s: slot %u does not exist: the stager has %u slots", fn, slot, stager->slots);
    GV_REQUIRE(arena->device == stager->device, "%s: the arena is on device %d but the stager on device %d", fn,
               arena->device, stager->device);
    return GV_OK;
}

/* One copy; every piece counts as one GV_FAULT_COPY call, empty ones included. */
static int enqueue(const char *fn, gv_stager *stager, gv_arena *arena, uint64_t arena_offset, const void *src, uint64_t bytes) {
    if (gv_fault_hit(GV_FAULT_COPY, stager->device))
        return GV_FAULT_FAIL(GV_FAULT_COPY, GV_ERR_COPY, "%s: cudaMemcpyAsync of %llu bytes to arena offset %llu", fn,
                             (unsigned long long)bytes, (unsigned long long)arena_offset);
    if (bytes == 0) return GV_OK;
    cudaError_t err = cudaMemcpyAsync((char *)arena->ptr + arena_offset, src, bytes, cudaMemcpyHostToDevice, stager->stream);
    if (err == cudaSuccess) return GV_OK;
    return gv_fail_cuda(err, GV_ERR_COPY, __FILE__, __LINE__, "%s: cudaMemcpyAsync of %llu bytes to arena offset %llu", fn,
                        (unsigned long long)bytes, (unsigned long long)arena_offset);
}

/* Records the slot's event after its copies; on any failure drains the stream. */
static int finish(const char *fn, gv_stager *stager, uint32_t slot, int rc) {
    if (rc == GV_OK) {
        if (gv_fault_hit(GV_FAULT_EVENT, stager->device))
            rc = GV_FAULT_FAIL(GV_FAULT_EVENT, GV_ERR_COPY, "%s: cudaEventRecord for slot %u", fn, slot);
        else
            rc = GV_CHECK(cudaEventRecord(stager->events[slot], stager->stream), GV_ERR_COPY);
        if (rc == GV_OK) stager->recorded[slot] = true;
    }
    if (rc != GV_OK) {
        cudaStreamSynchronize(stager->stream);
        cudaGetLastError();
    }
    return rc;
}

extern "C" int gv_stager_upload(gv_stager *stager, uint32_t slot, gv_arena *arena, const uint64_t *pieces, uint32_t n_pieces) {
    const char *fn = "gv_stager_upload";
    int rc = check_target(fn, stager, slot, arena);
    if (rc != GV_OK) return rc;
    GV_REQUIRE(pieces != NULL || n_pieces == 0, "%s: pieces is NULL but n_pieces is %u", fn, n_pieces);
    for (uint32_t i = 0; i < n_pieces; i++) {
        const uint64_t *piece = pieces + 3 * (size_t)i;
        uint64_t slot_offset = piece[0], arena_offset = piece[1], bytes = piece[2];
        GV_REQUIRE(!gv_out_of_range(slot_offset, bytes, stager->slot_bytes),
                   "%s: piece %u: slot range [%llu, %llu + %llu) is outside the slot of %llu bytes", fn, i,
                   (unsigned long long)slot_offset, (unsigned long long)slot_offset, (unsigned long long)bytes,
                   (unsigned long long)stager->slot_bytes);
        GV_REQUIRE(!gv_out_of_range(arena_offset, bytes, arena->bytes),
                   "%s: piece %u: arena range [%llu, %llu + %llu) is outside the arena of %llu bytes", fn, i,
                   (unsigned long long)arena_offset, (unsigned long long)arena_offset, (unsigned long long)bytes,
                   (unsigned long long)arena->bytes);
    }
    GV_CUDA(cudaSetDevice(stager->device), GV_ERR_CUDA);
    const char *host = (const char *)stager->host[slot];
    for (uint32_t i = 0; i < n_pieces && rc == GV_OK; i++) {
        const uint64_t *piece = pieces + 3 * (size_t)i;
        rc = enqueue(fn, stager, arena, piece[1], host + piece[0], piece[2]);
    }
    return finish(fn, stager, slot, rc);
}

extern "C" int gv_stager_upload_from(gv_stager *stager, uint32_t slot, const void *src, gv_arena *arena,
                                     uint64_t arena_offset, uint64_t bytes) {
    const char *fn = "gv_stager_upload_from";
    int rc = check_target(fn, stager, slot, arena);
    if (rc != GV_OK) return rc;
    GV_REQUIRE(src != NULL || bytes == 0, "%s: src is NULL", fn);
    rc = gv_arena_check_range(fn, arena, arena_offset, bytes);
    if (rc != GV_OK) return rc;
    GV_CUDA(cudaSetDevice(stager->device), GV_ERR_CUDA);
    return finish(fn, stager, slot, enqueue(fn, stager, arena, arena_offset, src, bytes));
}

/* ─── waiting ───────────────────────────────────────────────────────────────── */

extern "C" int gv_stager_wait(gv_stager *stager, uint32_t slot) {
    GV_REQUIRE(stager != NULL, "gv_stager_wait: stager is NULL");
    GV_REQUIRE(slot < stager->slots, "gv_stager_wait: slot %u does not exist: the stager has %u slots", slot, stager->slots);
    if (!stager->recorded[slot]) return GV_OK;
    if (gv_fault_hit(GV_FAULT_EVENT, stager->device))
        return GV_FAULT_FAIL(GV_FAULT_EVENT, GV_ERR_COPY, "gv_stager_wait: cudaEventSynchronize for slot %u", slot);
    GV_CUDA(cudaEventSynchronize(stager->events[slot]), GV_ERR_COPY);
    return GV_OK;
}

extern "C" int gv_stager_sync(gv_stager *stager) {
    GV_REQUIRE(stager != NULL, "gv_stager_sync: stager is NULL");
    GV_CUDA(cudaStreamSynchronize(stager->stream), GV_ERR_COPY);
    return GV_OK;
}
