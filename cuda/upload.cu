/*
 * upload.cu — the hot loop of a load, on the calling thread: claim a run of
 * spans from a cursor every thread shares, read each span from the file
 * straight into a pinned slot, enqueue its copies into the arena, turn the
 * ring; and the same claiming for host checksums of file ranges (verify).
 *
 * The cursor, the stop flag and the byte count live in memory the threads
 * share (gv_upload_shared); claims are compare-and-swap, so every span goes to
 * exactly one thread whatever the interleaving, and claims[] records which.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ─── the shared cursor ─────────────────────────────────────────────────────── */

static int32_t load_i32(const int32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

static bool stopped(gv_upload_shared *shared) { return load_i32(&shared->stop) != 0; }

static void request_stop(gv_upload_shared *shared) { __atomic_store_n(&shared->stop, 1, __ATOMIC_SEQ_CST); }

/* How many spans a claim takes when `left` are left (see gv_schedule). */
static int32_t run_length(const gv_upload_shared *shared, int32_t total, int32_t left) {
    int32_t parties = shared->parties > 0 ? (int32_t)shared->parties : 1;
    switch (shared->schedule) {
    case GV_SCHEDULE_CHUNKS: return 4;
    case GV_SCHEDULE_SHARES: return (total + parties - 1) / parties;
    case GV_SCHEDULE_GUIDED: return (left + 2 * parties - 1) / (2 * parties);
    default: return (left + parties - 1) / parties;
    }
}

/* Claims [first, end) into run; false when no span is left. */
static bool claim_run(gv_upload_shared *shared, int32_t total, int32_t *run) {
    int32_t first = load_i32(&shared->next_span);
    for (;;) {
        if (first >= total) return false;
        int32_t take = run_length(shared, total, total - first);
        if (take < 1) take = 1;
        int32_t end = take > total - first ? total : first + take;
        if (__atomic_compare_exchange_n(&shared->next_span, &first, end, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            run[0] = first;
            run[1] = end;
            return true;
        }
    }
}

/* ─── reading the file ──────────────────────────────────────────────────────── */

/* pread until `bytes` are in, retrying on EINTR and short reads; end of file is GV_ERR_FILE_SHORT. */
static int read_fully(int fd, void *dst, uint64_t bytes, uint64_t offset) {
    uint64_t done = 0;
    while (done < bytes) {
        ssize_t n = pread(fd, (char *)dst + done, bytes - done, (off_t)(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return gv_fail_os(errno, GV_ERR_READ, "read of %llu bytes at offset %llu", (unsigned long long)(bytes - done),
                              (unsigned long long)(offset + done));
        }
        if (n == 0) {
            return gv_fail(GV_ERR_FILE_SHORT, "the file ended at byte %llu, inside a range of %llu bytes at %llu",
                           (unsigned long long)(offset + done), (unsigned long long)bytes, (unsigned long long)offset);
        }
        done += (uint64_t)n;
    }
    return GV_OK;
}

/* ─── one span ──────────────────────────────────────────────────────────────── */

/* The record of span i, checked against the array and the slot: GV_OK or a caller bug. */
static int span_record(const uint64_t *spans, uint32_t n_spans, uint32_t i, uint64_t slot_bytes, const uint64_t **out) {
    uint64_t at = spans[i], end = spans[i + 1];
    GV_REQUIRE(at >= (uint64_t)n_spans + 1 && at + 4 <= end, "gv_upload_step: span %u has a malformed record", i);
    const uint64_t *r = spans + at;
    GV_REQUIRE(r[2] <= slot_bytes, "gv_upload_step: span %u is %llu bytes; the slots hold %llu", i, (unsigned long long)r[2],
               (unsigned long long)slot_bytes);
    GV_REQUIRE(r[0] <= (uint64_t)INT32_MAX, "gv_upload_step: span %u has fd %llu", i, (unsigned long long)r[0]);
    GV_REQUIRE(end - at == 4 + 3 * r[3], "gv_upload_step: span %u has %llu pieces in a record of %llu words", i,
               (unsigned long long)r[3], (unsigned long long)(end - at));
    *out = r;
    return GV_OK;
}

/* Benchmarks: GV_UPLOAD_* (gv_debug_upload_mode). */
static std::atomic<int> upload_mode{GV_UPLOAD_NORMAL};

extern "C" void gv_debug_upload_mode(int mode) {
    upload_mode.store(mode == GV_UPLOAD_READ_ONLY || mode == GV_UPLOAD_COPY_ONLY ? mode : GV_UPLOAD_NORMAL);
}

/* Wait for the next slot, read span i into it, enqueue its pieces. */
static int upload_span(gv_stager *stager, gv_arena *arena, const uint64_t *r) {
    uint32_t slot = stager->next_slot;
    int mode = upload_mode.load(std::memory_order_relaxed);
    int rc = gv_stager_wait(stager, slot);
    if (rc != GV_OK) return rc;
    if (mode != GV_UPLOAD_COPY_ONLY) rc = read_fully((int)r[0], stager->host[slot], r[2], r[1]);
    if (rc != GV_OK) return rc;
    if (mode != GV_UPLOAD_READ_ONLY) rc = gv_stager_upload(stager, slot, arena, r + 4, (uint32_t)r[3]);
    if (rc != GV_OK) return rc;
    stager->next_slot = (slot + 1) % stager->slots;
    return GV_OK;
}

/* Ends a step that failed or was cancelled: the others stop, nothing of ours stays in flight. */
static int abandon(gv_stager *stager, gv_upload_shared *shared, int rc) {
    request_stop(shared);
    if (stager != NULL) {
        cudaSetDevice(stager->device);
        cudaStreamSynchronize(stager->stream);
        cudaGetLastError();
    }
    return rc;
}

static int upload_step(gv_stager *stager, gv_arena *arena, const uint64_t *spans, uint32_t n_spans,
                       gv_upload_shared *shared, uint32_t *claims, uint32_t worker, int32_t *run,
                       uint32_t max_spans, uint64_t *bytes_out, int32_t *finished) {
    GV_REQUIRE(bytes_out != NULL && finished != NULL && run != NULL, "gv_upload_step: run, bytes_out and finished must not be NULL");
    *bytes_out = 0;
    *finished = 0;
    GV_REQUIRE(stager != NULL && arena != NULL && shared != NULL, "gv_upload_step: stager, arena and shared must not be NULL");
    GV_REQUIRE(spans != NULL && claims != NULL, "gv_upload_step: spans and claims must not be NULL");
    GV_REQUIRE(n_spans < (uint32_t)INT32_MAX, "gv_upload_step: %u spans is too many", n_spans);
    GV_REQUIRE(arena->device == stager->device, "gv_upload_step: the arena is on device %d but the stager on device %d",
               arena->device, stager->device);
    int rc = GV_CHECK(cudaSetDevice(stager->device), GV_ERR_CUDA);
    if (rc != GV_OK) return abandon(NULL, shared, rc);

    for (uint32_t done = 0; done < max_spans;) {
        if (run[0] >= run[1] && !claim_run(shared, (int32_t)n_spans, run)) {
            rc = GV_CHECK(cudaStreamSynchronize(stager->stream), GV_ERR_COPY);
            if (rc != GV_OK) return abandon(stager, shared, rc);
            *finished = 1;
            int mode = upload_mode.load();
            if (mode != GV_UPLOAD_NORMAL) /* never a model: the arena holds garbage */
                return gv_fail(GV_ERR_BENCH_MODE, "gv_upload_step: the upload ran in benchmark mode %s, so VRAM holds no model",
                               mode == GV_UPLOAD_READ_ONLY ? "GV_UPLOAD_READ_ONLY" : "GV_UPLOAD_COPY_ONLY");
            return GV_OK;
        }
        for (; run[0] < run[1] && done < max_spans; run[0]++, done++) {
            if (stopped(shared)) return abandon(stager, shared, gv_fail(GV_ERR_CANCELLED, "gv_upload_step: stopped"));
            uint32_t i = (uint32_t)run[0];
            uint32_t before = __atomic_exchange_n(&claims[i], worker + 1, __ATOMIC_SEQ_CST);
            if (before != 0) {
                return abandon(stager, shared, gv_fail(GV_ERR_INVALID_ARGUMENT, "gv_upload_step: span %u was claimed by worker %u and again by worker %u",
                                                       i, before - 1, worker));
            }
            const uint64_t *r = NULL;
            rc = span_record(spans, n_spans, i, stager->slot_bytes, &r);
            if (rc == GV_OK) rc = upload_span(stager, arena, r);
            if (rc != GV_OK) return abandon(stager, shared, rc);
            __atomic_fetch_add(&shared->bytes_done, r[2], __ATOMIC_SEQ_CST);
            *bytes_out += r[2];
        }
    }
    return GV_OK;
}

extern "C" int gv_upload_step(gv_stager *stager, gv_arena *arena, const uint64_t *spans, uint32_t n_spans,
                              gv_upload_shared *shared, uint32_t *claims, uint32_t worker, int32_t *run,
                              uint32_t max_spans, uint64_t *bytes_out, int32_t *finished, int32_t *gate) {
    if (!gv_gate_enter(gate)) return gv_fail(GV_ERR_CANCELLED, "gv_upload_step: this thread was retired");
    return gv_gate_leave(gate, upload_step(stager, arena, spans, n_spans, shared, claims, worker, run, max_spans, bytes_out, finished));
}

/* ─── host checksums of file ranges ─────────────────────────────────────────── */

/* A multiple of 8, so every piece but a chunk's last is whole words. */
#define CHECKSUM_PIECE (256u << 10)

static int checksum_file_step(const uint64_t *chunks, uint32_t n, gv_upload_shared *shared, uint64_t *sums,
                              void *buffer, uint64_t buffer_bytes, uint32_t max_chunks, int32_t *finished) {
    GV_REQUIRE(finished != NULL, "gv_checksum_file_step: finished is NULL");
    *finished = 0;
    GV_REQUIRE(shared != NULL && buffer != NULL && (n == 0 || (chunks != NULL && sums != NULL)),
               "gv_checksum_file_step: shared, buffer, chunks and sums must not be NULL");
    GV_REQUIRE(n < (uint32_t)INT32_MAX, "gv_checksum_file_step: %u chunks is too many", n);
    for (uint32_t done = 0; done < max_chunks; done++) {
        if (stopped(shared)) return abandon(NULL, shared, gv_fail(GV_ERR_CANCELLED, "gv_checksum_file_step: stopped"));
        int32_t i = __atomic_fetch_add(&shared->next_span, 1, __ATOMIC_SEQ_CST);
        if (i >= (int32_t)n) {
            *finished = 1;
            return GV_OK;
        }
        const uint64_t *c = chunks + 4 * (size_t)i;
        if (c[2] > buffer_bytes || c[0] > (uint64_t)INT32_MAX) {
            return abandon(NULL, shared, gv_fail(GV_ERR_INVALID_ARGUMENT, "gv_checksum_file_step: chunk %d (%llu bytes, fd %llu) does not fit the buffer of %llu bytes",
                                                 i, (unsigned long long)c[2], (unsigned long long)c[0], (unsigned long long)buffer_bytes));
        }
        /* Read and sum a piece at a time, so the words are summed while the read left
         * them in this core's L2, not fetched again from DRAM after a whole chunk. */
        uint64_t sum = 0;
        for (uint64_t at = 0; at < c[2]; at += CHECKSUM_PIECE) {
            uint64_t piece = c[2] - at < CHECKSUM_PIECE ? c[2] - at : CHECKSUM_PIECE;
            int rc = read_fully((int)c[0], buffer, piece, c[1] + at);
            if (rc != GV_OK) return abandon(NULL, shared, rc);
            sum += gv_checksum_host_partial(buffer, piece, c[3] + at / 8);
        }
        sums[i] = sum;
        __atomic_fetch_add(&shared->bytes_done, c[2], __ATOMIC_SEQ_CST);
    }
    return GV_OK;
}

extern "C" int gv_checksum_file_step(const uint64_t *chunks, uint32_t n, gv_upload_shared *shared, uint64_t *sums,
                                     void *buffer, uint64_t buffer_bytes, uint32_t max_chunks, int32_t *finished, int32_t *gate) {
    if (!gv_gate_enter(gate)) return gv_fail(GV_ERR_CANCELLED, "gv_checksum_file_step: this thread was retired");
    return gv_gate_leave(gate, checksum_file_step(chunks, n, shared, sums, buffer, buffer_bytes, max_chunks, finished));
}
