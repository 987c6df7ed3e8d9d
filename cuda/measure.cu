/*
 * measure.cu — the ceilings an upload is measured against: host-to-device
 * cudaMemcpy bandwidth from pinned or pageable memory (one device, median of
 * `reps` copies timed with events), pinned copies to several devices at once
 * (a thread per device), and pread from the page cache by many threads at once.
 * What it allocates lives only for the call and is not counted in gv_live.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MAX_REPS 10000

static int compare_floats(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double median(float *values, int n) {
    qsort(values, (size_t)n, sizeof *values, compare_floats);
    return n % 2 ? values[n / 2] : 0.5 * ((double)values[n / 2 - 1] + values[n / 2]);
}

/* Times `reps` copies into ms[]. */
static int time_copies(void *dev, const void *host, uint64_t bytes, int reps, float *ms, cudaEvent_t start, cudaEvent_t stop) {
    GV_CUDA(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice), GV_ERR_COPY); /* warm-up */
    for (int r = 0; r < reps; r++) {
        GV_CUDA(cudaEventRecord(start, 0), GV_ERR_COPY);
        GV_CUDA(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice), GV_ERR_COPY);
        GV_CUDA(cudaEventRecord(stop, 0), GV_ERR_COPY);
        GV_CUDA(cudaEventSynchronize(stop), GV_ERR_COPY);
        GV_CUDA(cudaEventElapsedTime(&ms[r], start, stop), GV_ERR_COPY);
    }
    return GV_OK;
}

extern "C" int gv_measure_h2d(int device, uint64_t bytes, int pinned, int reps, double *gb_per_s) {
    const char *fn = "gv_measure_h2d";
    GV_REQUIRE(gb_per_s != NULL, "%s: gb_per_s is NULL", fn);
    *gb_per_s = 0;
    GV_REQUIRE(bytes > 0, "%s: bytes is 0", fn);
    GV_REQUIRE(reps >= 1 && reps <= MAX_REPS, "%s: reps is %d, expected 1..%d", fn, reps, MAX_REPS);
    int rc = gv_use_device(fn, device);
    if (rc != GV_OK) return rc;

    void *dev = NULL, *host = NULL;
    cudaEvent_t start = NULL, stop = NULL;
    float *ms = (float *)calloc((size_t)reps, sizeof *ms);
    if (ms == NULL) return gv_fail(GV_ERR_HOST_MEMORY, "%s: malloc of %d timings failed", fn, reps);

    rc = GV_CHECK(cudaMalloc(&dev, bytes), GV_ERR_OUT_OF_MEMORY);
    if (rc == GV_OK && pinned) {
        rc = gv_pinned_alloc(fn, bytes, false, device, false, &host);
    } else if (rc == GV_OK) {
        host = malloc(bytes);
        if (host == NULL) rc = gv_fail(GV_ERR_HOST_MEMORY, "%s: malloc of %.1f MiB failed", fn, GV_MIB(bytes));
        else memset(host, 0xA5, bytes); /* touch every page before timing */
    }
    if (rc == GV_OK) rc = GV_CHECK(cudaEventCreate(&start), GV_ERR_CUDA);
    if (rc == GV_OK) rc = GV_CHECK(cudaEventCreate(&stop), GV_ERR_CUDA);
    if (rc == GV_OK) rc = time_copies(dev, host, bytes, reps, ms, start, stop);
    if (rc == GV_OK) {
        double seconds = median(ms, reps) / 1000.0;
        *gb_per_s = seconds > 0 ? (double)bytes / seconds / 1e9 : 0;
    }

    /* free everything; a cleanup error is reported only when nothing failed before */
    cudaError_t cleanup = cudaSuccess, err;
    if (stop != NULL && (err = cudaEventDestroy(stop)) != cudaSuccess) cleanup = err;
    if (start != NULL && (err = cudaEventDestroy(start)) != cudaSuccess) cleanup = err;
    if (host != NULL && pinned && (err = cudaHostUnregister(host)) != cudaSuccess) cleanup = err;
    free(host);
    if (dev != NULL && (err = cudaFree(dev)) != cudaSuccess) cleanup = err;
    free(ms);
    if (rc == GV_OK && cleanup != cudaSuccess)
        rc = gv_fail_cuda(cleanup, GV_ERR_CUDA, __FILE__, __LINE__, "%s: freeing its buffers and events", fn);
    cudaGetLastError();
    return rc;
}

/* ─── many devices at once, many readers at once ───────────────────────────── */

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The start line of a measurement: threads set up, count themselves in, and wait
 * for the main thread's go (1) or abort (-1) — no barrier, so a thread that could
 * not be started cannot leave the others waiting. */
struct start_line {
    std::atomic<int> ready{0};
    std::atomic<int> state{0};
};

static bool wait_for_go(start_line *line) {
    line->ready.fetch_add(1);
    while (line->state.load() == 0) usleep(20);
    return line->state.load() > 0;
}

/* Starts n threads; on failure aborts the started ones and returns how many started. */
static int start_threads(pthread_t *ids, int n, void *(*main_fn)(void *), void *records, size_t record_size, start_line *line) {
    int started = 0;
    while (started < n && pthread_create(&ids[started], NULL, main_fn, (char *)records + (size_t)started * record_size) == 0) started++;
    if (started < n) {
        line->state.store(-1);
        for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
        return started;
    }
    while (line->ready.load() < n) usleep(20);
    line->state.store(1);
    return n;
}

struct h2d_thread {
    int device, reps;
    uint64_t bytes;
    start_line *line;
    int rc;
    char error[256]; /* this thread's failure, copied from its own last error */
    double start, end;
};

static void *h2d_thread_main(void *arg) {
    h2d_thread *t = (h2d_thread *)arg;
    void *dev = NULL, *host = NULL;
    cudaStream_t stream = NULL;
    t->rc = gv_use_device("gv_measure_h2d_many", t->device);
    if (t->rc == GV_OK) t->rc = GV_CHECK(cudaMalloc(&dev, t->bytes), GV_ERR_OUT_OF_MEMORY);
    if (t->rc == GV_OK) t->rc = gv_pinned_alloc("gv_measure_h2d_many", t->bytes, false, t->device, false, &host);
    if (t->rc == GV_OK) t->rc = GV_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), GV_ERR_CUDA);
    if (t->rc == GV_OK) t->rc = GV_CHECK(cudaMemcpyAsync(dev, host, t->bytes, cudaMemcpyHostToDevice, stream), GV_ERR_COPY);
    if (t->rc == GV_OK) t->rc = GV_CHECK(cudaStreamSynchronize(stream), GV_ERR_COPY); /* the warm-up */
    bool go = wait_for_go(t->line);
    t->start = now_seconds();
    for (int r = 0; go && r < t->reps && t->rc == GV_OK; r++)
        t->rc = GV_CHECK(cudaMemcpyAsync(dev, host, t->bytes, cudaMemcpyHostToDevice, stream), GV_ERR_COPY);
    if (go && t->rc == GV_OK) t->rc = GV_CHECK(cudaStreamSynchronize(stream), GV_ERR_COPY);
    t->end = now_seconds();
    if (t->rc != GV_OK) snprintf(t->error, sizeof t->error, "%s", gv_last_error());
    if (stream != NULL) cudaStreamDestroy(stream);
    if (host != NULL) gv_pinned_release(host);
    if (dev != NULL) cudaFree(dev);
    cudaGetLastError();
    return NULL;
}

extern "C" int gv_measure_h2d_many(const int *devices, int n, uint64_t bytes, int reps, double *gb_per_s) {
    const char *fn = "gv_measure_h2d_many";
    GV_REQUIRE(devices != NULL && gb_per_s != NULL, "%s: devices and gb_per_s must not be NULL", fn);
    GV_REQUIRE(n >= 1 && n <= 64, "%s: n is %d, expected 1..64", fn, n);
    GV_REQUIRE(bytes > 0, "%s: bytes is 0", fn);
    GV_REQUIRE(reps >= 1 && reps <= MAX_REPS, "%s: reps is %d, expected 1..%d", fn, reps, MAX_REPS);
    for (int i = 0; i <= n; i++) gb_per_s[i] = 0;
    h2d_thread *threads = (h2d_thread *)calloc((size_t)n, sizeof *threads);
    pthread_t *ids = (pthread_t *)calloc((size_t)n, sizeof *ids);
    if (threads == NULL || ids == NULL) {
        free(threads);
        free(ids);
        return gv_fail(GV_ERR_HOST_MEMORY, "%s: malloc of %d thread records failed", fn, n);
    }
    start_line line;
    for (int i = 0; i < n; i++) {
        threads[i].device = devices[i];
        threads[i].reps = reps;
        threads[i].bytes = bytes;
        threads[i].line = &line;
    }
    int started = start_threads(ids, n, h2d_thread_main, threads, sizeof *threads, &line);
    int rc = GV_OK;
    if (started < n) {
        rc = gv_fail(GV_ERR_HOST_MEMORY, "%s: could not start thread %d of %d", fn, started + 1, n);
    } else {
        for (int i = 0; i < n; i++) pthread_join(ids[i], NULL);
        double first = 0, last = 0;
        for (int i = 0; i < n && rc == GV_OK; i++) {
            if (threads[i].rc != GV_OK) {
                rc = gv_fail(threads[i].rc, "%s: device %d: %s", fn, threads[i].device, threads[i].error);
                break;
            }
            double seconds = threads[i].end - threads[i].start;
            gb_per_s[i] = seconds > 0 ? (double)bytes * reps / seconds / 1e9 : 0;
            if (i == 0 || threads[i].start < first) first = threads[i].start;
            if (i == 0 || threads[i].end > last) last = threads[i].end;
        }
        if (rc == GV_OK && last > first) gb_per_s[n] = (double)bytes * reps * n / (last - first) / 1e9;
    }
    free(threads);
    free(ids);
    return rc;
}

struct read_thread {
    int fd;
    uint64_t file_bytes, chunk;
    std::atomic<uint64_t> *cursor;
    start_line *line;
    int os_error;
    uint64_t bytes;
};

static void *read_thread_main(void *arg) {
    read_thread *t = (read_thread *)arg;
    char *buffer = (char *)malloc(t->chunk);
    if (buffer != NULL) memset(buffer, 0, t->chunk); /* touched before the clock starts */
    bool go = wait_for_go(t->line);
    if (buffer == NULL) t->os_error = ENOMEM;
    while (go && buffer != NULL) {
        uint64_t at = t->cursor->fetch_add(t->chunk);
        if (at >= t->file_bytes) break;
        uint64_t want = t->file_bytes - at < t->chunk ? t->file_bytes - at : t->chunk;
        for (uint64_t done = 0; done < want;) {
            ssize_t n = pread(t->fd, buffer + done, want - done, (off_t)(at + done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                t->os_error = n < 0 ? errno : EIO;
                go = false;
                break;
            }
            done += (uint64_t)n;
            t->bytes += (uint64_t)n;
        }
    }
    free(buffer);
    return NULL;
}

extern "C" int gv_measure_read(int fd, uint64_t file_bytes, int threads, uint64_t chunk_bytes, double *gb_per_s) {
    const char *fn = "gv_measure_read";
    GV_REQUIRE(gb_per_s != NULL, "%s: gb_per_s is NULL", fn);
    *gb_per_s = 0;
    GV_REQUIRE(fd >= 0 && file_bytes > 0 && chunk_bytes > 0, "%s: fd %d, %llu bytes in chunks of %llu", fn, fd,
               (unsigned long long)file_bytes, (unsigned long long)chunk_bytes);
    GV_REQUIRE(threads >= 1 && threads <= 1024, "%s: threads is %d, expected 1..1024", fn, threads);
    read_thread *ts = (read_thread *)calloc((size_t)threads, sizeof *ts);
    pthread_t *ids = (pthread_t *)calloc((size_t)threads, sizeof *ids);
    if (ts == NULL || ids == NULL) {
        free(ts);
        free(ids);
        return gv_fail(GV_ERR_HOST_MEMORY, "%s: malloc of %d thread records failed", fn, threads);
    }
    std::atomic<uint64_t> cursor{0};
    start_line line;
    for (int i = 0; i < threads; i++) {
        ts[i].fd = fd;
        ts[i].file_bytes = file_bytes;
        ts[i].chunk = chunk_bytes;
        ts[i].cursor = &cursor;
        ts[i].line = &line;
    }
    double t0 = 0;
    int started = start_threads(ids, threads, read_thread_main, ts, sizeof *ts, &line);
    int rc = GV_OK;
    if (started < threads) {
        rc = gv_fail(GV_ERR_HOST_MEMORY, "%s: could not start thread %d of %d", fn, started + 1, threads);
    } else {
        t0 = now_seconds();
        for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
        double seconds = now_seconds() - t0;
        uint64_t total = 0;
        for (int i = 0; i < threads; i++) {
            total += ts[i].bytes;
            if (ts[i].os_error != 0 && rc == GV_OK) rc = gv_fail_os(ts[i].os_error, GV_ERR_READ, "%s: pread", fn);
        }
        if (rc == GV_OK && seconds > 0) *gb_per_s = (double)total / seconds / 1e9;
    }
    free(ts);
    free(ids);
    return rc;
}
