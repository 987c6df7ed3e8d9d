/*
 * measure.cu — host-to-device cudaMemcpy bandwidth, from pinned or pageable
 * memory: one warm-up copy, then the median of `reps` copies timed with events.
 * What it allocates lives only for the call and is not counted in gv_live.
 */
#include <stdlib.h>
#include <string.h>

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
        rc = gv_pinned_alloc(fn, bytes, false, &host);
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
