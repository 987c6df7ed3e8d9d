/*
 * peer.cu — copies between the arenas of two devices, for replicas: each device
 * uploads a share of the file over its own PCIe link, then the shares are
 * exchanged device to device (NVLink where the GPUs have it).
 *
 * A copy runs on a stream of its own on the source device, so every pair of
 * devices copies at once, and records an event the caller polls: nothing here
 * blocks the calling thread except gv_copy_free, which waits for the copy so
 * the arenas may be freed safely afterwards.
 */
#include <stdlib.h>

#include "internal.h"

struct gv_copy {
    int device; /* the source device, which owns the stream and the event */
    cudaStream_t stream;
    cudaEvent_t done;
};

extern "C" int gv_peer_enable(int device, int peer, int *enabled) {
    GV_REQUIRE(enabled != NULL, "gv_peer_enable: enabled is NULL");
    *enabled = 0;
    GV_REQUIRE(device != peer, "gv_peer_enable: device %d and peer %d are the same device", device, peer);
    int rc = gv_use_device("gv_peer_enable", device);
    if (rc == GV_OK) rc = gv_use_device("gv_peer_enable", peer);
    if (rc != GV_OK) return rc;
    int there = 0, back = 0;
    GV_CUDA(cudaDeviceCanAccessPeer(&there, device, peer), GV_ERR_CUDA);
    GV_CUDA(cudaDeviceCanAccessPeer(&back, peer, device), GV_ERR_CUDA);
    if (!there || !back) return GV_OK;
    const int pair[2][2] = {{device, peer}, {peer, device}};
    for (int i = 0; i < 2; i++) {
        GV_CUDA(cudaSetDevice(pair[i][0]), GV_ERR_CUDA);
        cudaError_t err = cudaDeviceEnablePeerAccess(pair[i][1], 0);
        if (err == cudaErrorPeerAccessAlreadyEnabled) {
            cudaGetLastError(); /* enabled by an earlier load: fine */
        } else if (err != cudaSuccess) {
            return gv_fail_cuda(err, GV_ERR_CUDA, __FILE__, __LINE__, "gv_peer_enable: cudaDeviceEnablePeerAccess(%d → %d)",
                                pair[i][0], pair[i][1]);
        }
    }
    *enabled = 1;
    return GV_OK;
}

static void release(gv_copy *c) {
    if (c->done != NULL) cudaEventDestroy(c->done);
    if (c->stream != NULL) cudaStreamDestroy(c->stream);
    cudaGetLastError();
    free(c);
}

extern "C" int gv_copy_start(gv_arena *dst, gv_arena *src, uint64_t offset, uint64_t bytes, gv_copy **out) {
    const char *fn = "gv_copy_start";
    GV_REQUIRE(out != NULL, "%s: out is NULL", fn);
    *out = NULL;
    GV_REQUIRE(dst != NULL && src != NULL, "%s: dst and src must not be NULL", fn);
    GV_REQUIRE(dst != src, "%s: dst and src are the same arena", fn);
    int rc = gv_arena_check_range(fn, src, offset, bytes);
    if (rc == GV_OK) rc = gv_arena_check_range(fn, dst, offset, bytes);
    if (rc == GV_OK) rc = gv_use_device(fn, src->device);
    if (rc != GV_OK) return rc;

    gv_copy *c = (gv_copy *)calloc(1, sizeof *c);
    if (c == NULL) return gv_fail(GV_ERR_HOST_MEMORY, "%s: malloc of the copy handle failed", fn);
    c->device = src->device;
    rc = GV_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), GV_ERR_CUDA);
    if (rc == GV_OK) rc = GV_CHECK(cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming), GV_ERR_CUDA);
    if (rc == GV_OK && gv_fault_hit(GV_FAULT_PEER_COPY, dst->device)) {
        rc = GV_FAULT_FAIL(GV_FAULT_PEER_COPY, GV_ERR_COPY, "%s: cudaMemcpyPeerAsync of %.1f MiB from device %d to device %d", fn,
                           GV_MIB(bytes), src->device, dst->device);
    }
    if (rc == GV_OK && bytes > 0) {
        rc = GV_CHECK(cudaMemcpyPeerAsync((char *)dst->ptr + offset, dst->device, (const char *)src->ptr + offset, src->device,
                                          bytes, c->stream),
                      GV_ERR_COPY);
    }
    if (rc == GV_OK) rc = GV_CHECK(cudaEventRecord(c->done, c->stream), GV_ERR_COPY);
    if (rc != GV_OK) {
        if (c->stream != NULL) cudaStreamSynchronize(c->stream); /* nothing of it left in flight */
        release(c);
        return rc;
    }
    gv_live_counters.copies.fetch_add(1);
    *out = c;
    return GV_OK;
}

extern "C" int gv_copy_query(gv_copy *copy, int *done) {
    GV_REQUIRE(copy != NULL && done != NULL, "gv_copy_query: copy and done must not be NULL");
    *done = 0;
    GV_CUDA(cudaSetDevice(copy->device), GV_ERR_CUDA);
    cudaError_t err = cudaEventQuery(copy->done);
    if (err == cudaErrorNotReady) {
        cudaGetLastError();
        return GV_OK;
    }
    if (err != cudaSuccess) return gv_fail_cuda(err, GV_ERR_COPY, __FILE__, __LINE__, "gv_copy_query: the copy from device %d", copy->device);
    *done = 1;
    return GV_OK;
}

extern "C" int gv_copy_free(gv_copy *copy) {
    if (copy == NULL) return GV_OK;
    int rc = GV_CHECK(cudaSetDevice(copy->device), GV_ERR_CUDA);
    if (rc == GV_OK) rc = GV_CHECK(cudaStreamSynchronize(copy->stream), GV_ERR_COPY);
    release(copy);
    gv_live_counters.copies.fetch_sub(1);
    return rc;
}
