/*
 * checksum.cu — the 64-bit checksum that proves VRAM holds the file's bytes,
 * computed the same way on the host and on the GPU (see gguf_vram.h):
 *
 *   w_i = the range as little-endian uint64, the last one zero-padded
 *   sum = Σ mix64(w_i ^ (i * 0x9E3779B97F4A7C15))  (mod 2^64)
 *   checksum = mix64(sum ^ bytes)
 *
 * The sum is a plain addition mod 2^64, so the GPU may add words in any order
 * (per thread, warp shuffle, shared memory, atomicAdd) and still agree bit for bit.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_vram's checksum reads words as little-endian: this host is not"
#endif

#define GOLDEN 0x9E3779B97F4A7C15ULL
#define THREADS 256
#define UNROLL 4

/* splitmix64's finalizer, a bijection on 64-bit words. */
__host__ __device__ static inline uint64_t mix64(uint64_t z) {
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z;
}

/* ─── host ──────────────────────────────────────────────────────────────────── */

/* Verify's host side hashes every byte of the model, so the word loop is built twice:
 * plainly, and for x86-64-v4 (AVX-512: eight 64-bit multiplies per instruction), chosen
 * when the library loads. The sum is the same either way (it is an addition mod 2^64);
 * on a Zen 4 core the vector loop hashes 29 GB/s against 6.8. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GV_WORD_LOOP __attribute__((target_clones("default", "arch=x86-64-v4")))
#else
#define GV_WORD_LOOP
#endif

GV_WORD_LOOP static uint64_t sum_words(const unsigned char *p, uint64_t full, uint64_t first_word) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < full; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8); /* data may be unaligned: memcpy makes each word one plain load */
        sum += mix64(w ^ ((first_word + i) * GOLDEN));
    }
    return sum;
}

/* NULL reads as empty. */
extern "C" uint64_t gv_checksum_host_partial(const void *data, uint64_t bytes, uint64_t first_word) {
    if (data == NULL) bytes = 0;
    const unsigned char *p = (const unsigned char *)data;
    uint64_t full = bytes / 8, i = full;
    uint64_t sum = sum_words(p, full, first_word);
    if (bytes % 8 != 0) {
        uint64_t w = 0;
        memcpy(&w, p + 8 * i, bytes % 8);
        sum += mix64(w ^ ((first_word + i) * GOLDEN));
    }
    return sum;
}

extern "C" uint64_t gv_checksum_finish(uint64_t sum, uint64_t bytes) {
    return mix64(sum ^ bytes);
}

extern "C" uint64_t gv_checksum_host(const void *data, uint64_t bytes) {
    if (data == NULL) bytes = 0;
    return gv_checksum_finish(gv_checksum_host_partial(data, bytes, 0), bytes);
}

/* ─── device ────────────────────────────────────────────────────────────────── */

/* Adds mix64(w_i ^ i·GOLDEN) over the range's words into *sum. `words` is 8-byte
 * aligned; the tail (bytes % 8 bytes after the full words) is read byte by byte. */
static __global__ void checksum_kernel(const uint64_t *__restrict__ words, uint64_t full, uint32_t tail_bytes,
                                unsigned long long *sum) {
    uint64_t local = 0;
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + (UNROLL - 1) * stride < full; i += UNROLL * stride) { /* UNROLL loads in flight per thread */
        uint64_t w[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) w[u] = words[i + u * stride];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) local += mix64(w[u] ^ ((i + u * stride) * GOLDEN));
    }
    for (; i < full; i += stride) local += mix64(words[i] ^ (i * GOLDEN));
    if (tail_bytes != 0 && blockIdx.x == 0 && threadIdx.x == 0) {
        const unsigned char *tail = (const unsigned char *)(words + full);
        uint64_t w = 0;
        for (uint32_t b = 0; b < tail_bytes; b++) w |= (uint64_t)tail[b] << (8 * b);
        local += mix64(w ^ (full * GOLDEN));
    }

    /* warp, then block, then one atomicAdd per block */
    __shared__ uint64_t warp_sums[THREADS / 32];
    for (int offset = 16; offset > 0; offset /= 2) local += __shfl_down_sync(0xffffffffu, local, offset);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_sums[warp] = local;
    __syncthreads();
    if (warp == 0) {
        local = lane < (int)(blockDim.x / 32) ? warp_sums[lane] : 0;
        for (int offset = 16; offset > 0; offset /= 2) local += __shfl_down_sync(0xffffffffu, local, offset);
        if (lane == 0) atomicAdd(sum, (unsigned long long)local);
    }
}

static int check_ranges(gv_arena *arena, const uint64_t *ranges, uint32_t n) {
    for (uint32_t r = 0; r < n; r++) {
        uint64_t offset = ranges[2 * (size_t)r], bytes = ranges[2 * (size_t)r + 1];
        GV_REQUIRE(offset % 8 == 0, "gv_checksum_device: range %u: offset %llu is not 8-byte aligned", r, (unsigned long long)offset);
        GV_REQUIRE(!gv_out_of_range(offset, bytes, arena->bytes),
                   "gv_checksum_device: range %u: [%llu, %llu + %llu) is outside the arena of %llu bytes", r,
                   (unsigned long long)offset, (unsigned long long)offset, (unsigned long long)bytes,
                   (unsigned long long)arena->bytes);
    }
    return GV_OK;
}

/* Launches one kernel per range into sums[r], on the legacy default stream:
 * it does not wait for a stager's non-blocking stream, so sync the stager first. */
static int launch_all(gv_arena *arena, const uint64_t *ranges, uint32_t n, unsigned long long *sums) {
    int sms = 0;
    GV_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, arena->device), GV_ERR_CUDA);
    uint64_t max_blocks = (uint64_t)(sms > 0 ? sms : 1) * 8;
    GV_CUDA(cudaMemset(sums, 0, (size_t)n * sizeof *sums), GV_ERR_CUDA);
    for (uint32_t r = 0; r < n; r++) {
        uint64_t offset = ranges[2 * (size_t)r], bytes = ranges[2 * (size_t)r + 1];
        if (bytes == 0) continue;
        uint64_t full = bytes / 8, blocks = (full + THREADS - 1) / THREADS;
        if (blocks < 1) blocks = 1;
        if (blocks > max_blocks) blocks = max_blocks;
        const uint64_t *words = (const uint64_t *)((const char *)arena->ptr + offset);
        checksum_kernel<<<(unsigned)blocks, THREADS>>>(words, full, (uint32_t)(bytes % 8), sums + r);
        GV_CUDA(cudaGetLastError(), GV_ERR_CUDA);
    }
    return GV_OK;
}

extern "C" int gv_checksum_device(gv_arena *arena, const uint64_t *ranges, uint32_t n, uint64_t *out) {
    GV_REQUIRE(arena != NULL, "gv_checksum_device: arena is NULL");
    if (n == 0) return GV_OK;
    GV_REQUIRE(ranges != NULL && out != NULL, "gv_checksum_device: ranges and out must not be NULL (n is %u)", n);
    int rc = check_ranges(arena, ranges, n);
    if (rc != GV_OK) return rc;
    GV_CUDA(cudaSetDevice(arena->device), GV_ERR_CUDA);

    unsigned long long *sums = NULL;
    GV_CUDA(cudaMalloc(&sums, (size_t)n * sizeof *sums), GV_ERR_OUT_OF_MEMORY);
    rc = launch_all(arena, ranges, n, sums);
    if (rc == GV_OK) rc = GV_CHECK(cudaMemcpy(out, sums, (size_t)n * sizeof *sums, cudaMemcpyDeviceToHost), GV_ERR_CUDA);
    if (rc != GV_OK) {
        cudaFree(sums); /* keeps the first error recorded */
        cudaGetLastError();
        return rc;
    }
    GV_CUDA(cudaFree(sums), GV_ERR_CUDA);
    for (uint32_t r = 0; r < n; r++) out[r] = mix64(out[r] ^ ranges[2 * (size_t)r + 1]);
    return GV_OK;
}
