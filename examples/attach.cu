/*
 * attach.cu — a program that uses a GGUF model `gguf-vram serve` keeps in GPU
 * memory, and proves what it got: on every device the model spans, a CUDA
 * kernel checksums every tensor in place, and each checksum must equal the
 * same checksum of the tensor's bytes in the model's file.
 *
 *   attach <model path or id> [--socket PATH]
 *   attach <model path or id> --repeat N --json [--socket PATH]   (the benchmark)
 *
 * An engine copies the first half: gvc_connect, gvc_attach, gvc_find or
 * gvc_tensor_at for device pointers, its own kernels, gvc_detach, gvc_close.
 * Build it as examples/README.md says. Exit codes: 0 every checksum equal,
 * 1 a checksum differs or a step failed, 2 usage.
 */
#include <algorithm>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vector>

#include <cuda_runtime.h>

#include "gguf_vram_client.h"

/* ─── the checksum of cuda/gguf_vram.h (gv_checksum_host) ─────────────────────
 * words w_i = the bytes as little-endian u64, the last one zero-padded;
 * sum = Σ mix64(w_i ^ (i * GOLDEN)) mod 2^64; checksum = mix64(sum ^ bytes). */

#define GOLDEN 0x9E3779B97F4A7C15ULL

__host__ __device__ static inline uint64_t mix64(uint64_t z) { /* splitmix64's finalizer */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Word i of a tensor: one load when the tensor is 8-byte aligned, bytes otherwise; the tail zero-padded. */
__device__ static inline uint64_t word_at(const unsigned char *data, uint64_t bytes, uint64_t i, bool aligned) {
    if (aligned && 8 * i + 8 <= bytes) return ((const uint64_t *)data)[i];
    uint64_t w = 0;
    for (uint64_t b = 0; b < 8 && 8 * i + b < bytes; b++) w |= (uint64_t)data[8 * i + b] << (8 * b);
    return w;
}

/* Adds this tensor's sum into *sum: a grid-stride loop, a warp reduction, one atomicAdd per warp (the sum is mod 2^64). */
__global__ void checksum_kernel(const unsigned char *data, uint64_t bytes, unsigned long long *sum) {
    uint64_t words = (bytes + 7) / 8;
    bool aligned = ((uintptr_t)data & 7) == 0;
    uint64_t local = 0;
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < words; i += (uint64_t)gridDim.x * blockDim.x)
        local += mix64(word_at(data, bytes, i, aligned) ^ (i * GOLDEN));
    for (int offset = 16; offset > 0; offset /= 2) local += __shfl_down_sync(0xffffffffu, local, offset);
    if ((threadIdx.x & 31) == 0) atomicAdd(sum, (unsigned long long)local);
}

/* Reads one byte of a device pointer: after it, the mapping is proven usable from a kernel. */
__global__ void touch_kernel(const unsigned char *data, unsigned char *out) { *out = *data; }

/* The checksum of `bytes` bytes of the file at `offset`, read in 64 MiB pieces (each a multiple of 8). */
static bool file_checksum(int fd, uint64_t offset, uint64_t bytes, std::vector<unsigned char> &buffer, uint64_t *out) {
    uint64_t sum = 0, done = 0;
    while (done < bytes) {
        uint64_t piece = std::min<uint64_t>(bytes - done, buffer.size());
        for (uint64_t got = 0; got < piece;) {
            ssize_t n = pread(fd, buffer.data() + got, piece - got, (off_t)(offset + done + got));
            if (n <= 0) return false;
            got += (uint64_t)n;
        }
        for (uint64_t i = 0; i < (piece + 7) / 8; i++) {
            uint64_t w = 0;
            memcpy(&w, buffer.data() + 8 * i, std::min<uint64_t>(8, piece - 8 * i));
            sum += mix64(w ^ ((done / 8 + i) * GOLDEN));
        }
        done += piece;
    }
    *out = mix64(sum ^ bytes);
    return true;
}

/* ─── helpers ───────────────────────────────────────────────────────────────── */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int fail(const char *step) {
    fprintf(stderr, "attach: %s failed: %s%s%s\n", step, gvc_last_error(), gvc_last_error_code()[0] ? " — server code " : "", gvc_last_error_code());
    return 1;
}

static int cuda_fail(const char *step, cudaError_t err) {
    fprintf(stderr, "attach: %s failed: %s (%s)\n", step, cudaGetErrorString(err), cudaGetErrorName(err));
    return 1;
}

/* Creates the primary context of every visible device, so attach times do not include it; its time in ms. */
static int create_contexts(double *ms, int *devices) {
    double start = now_ms();
    cudaError_t err = cudaGetDeviceCount(devices);
    for (int d = 0; err == cudaSuccess && d < *devices; d++) {
        err = cudaSetDevice(d);
        if (err == cudaSuccess) err = cudaFree(0);
    }
    if (err != cudaSuccess) return cuda_fail("creating the CUDA contexts", err);
    *ms = now_ms() - start;
    return 0;
}

/* ─── checking every tensor ─────────────────────────────────────────────────── */

static int check_device(const gvc_attachment *model, int index, std::vector<int> &fds, std::vector<unsigned char> &buffer) {
    int device = 0;
    void *base = NULL;
    uint64_t arena_bytes = 0;
    gvc_device_at(model, index, &device, &base, &arena_bytes);
    cudaError_t err = cudaSetDevice(device);
    std::vector<const gvc_tensor *> tensors;
    for (int i = 0; i < gvc_tensor_count(model); i++)
        if (gvc_tensor_at(model, i)->device == device) tensors.push_back(gvc_tensor_at(model, i));
    unsigned long long *sums = NULL;
    if (err == cudaSuccess) err = cudaMalloc(&sums, std::max<size_t>(1, tensors.size()) * sizeof *sums);
    if (err == cudaSuccess) err = cudaMemset(sums, 0, std::max<size_t>(1, tensors.size()) * sizeof *sums);
    for (size_t i = 0; err == cudaSuccess && i < tensors.size(); i++) {
        uint64_t blocks = std::min<uint64_t>(1024, (tensors[i]->bytes / 8 + 255) / 256 + 1);
        checksum_kernel<<<(unsigned)blocks, 256>>>((const unsigned char *)tensors[i]->data, tensors[i]->bytes, sums + i);
        err = cudaGetLastError();
    }
    std::vector<unsigned long long> device_sums(tensors.size());
    if (err == cudaSuccess && !tensors.empty()) err = cudaMemcpy(device_sums.data(), sums, tensors.size() * sizeof *sums, cudaMemcpyDeviceToHost);
    cudaFree(sums);
    if (err != cudaSuccess) return cuda_fail("the checksum kernels", err);

    uint64_t total = 0;
    int checked = 0, skipped = 0;
    for (size_t i = 0; i < tensors.size(); i++) {
        const gvc_tensor *t = tensors[i];
        uint64_t gpu = mix64(device_sums[i] ^ t->bytes), file = 0;
        if (t->shard >= (int)fds.size() || fds[t->shard] < 0) {
            skipped++;
            continue;
        }
        if (!file_checksum(fds[t->shard], t->file_offset, t->bytes, buffer, &file)) {
            fprintf(stderr, "attach: reading %s of %s failed: %s\n", t->name, gvc_model_file(model, t->shard), strerror(errno));
            return 1;
        }
        if (gpu != file) {
            printf("device %d: tensor %s differs from the file: GPU %016llx, file %016llx (%llu bytes at file offset %llu)\n", device, t->name,
                   (unsigned long long)gpu, (unsigned long long)file, (unsigned long long)t->bytes, (unsigned long long)t->file_offset);
            return 1;
        }
        checked++;
        if (!t->alias) total += t->bytes;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) snprintf(prop.name, sizeof prop.name, "?");
    printf("device %d (%s): %d tensors, %.1f MiB — every checksum equals the file's", device, prop.name, checked, (double)total / (1 << 20));
    if (skipped) printf(" (%d tensors of files this process cannot read were skipped)", skipped);
    printf("\n");
    return 0;
}

static int check_model(const char *model_name, const char *socket) {
    double context_ms = 0;
    int visible = 0;
    if (create_contexts(&context_ms, &visible) != 0) return 1;
    double start = now_ms();
    gvc_conn *conn = NULL;
    gvc_attachment *model = NULL;
    if (gvc_connect(socket, &conn) != GVC_OK) return fail("connecting");
    if (gvc_attach(conn, model_name, &model) != GVC_OK) {
        gvc_close(conn);
        return fail("attaching");
    }
    double attach_ms = now_ms() - start;
    printf("model %s (%s): %d tensors on %d device%s\n", gvc_model_id(model), gvc_model_file(model, 0) ? gvc_model_file(model, 0) : "?",
           gvc_tensor_count(model), gvc_device_count(model), gvc_device_count(model) == 1 ? "" : "s");
    printf("CUDA contexts on %d device%s: %.1f ms; connect + attach: %.2f ms\n", visible, visible == 1 ? "" : "s", context_ms, attach_ms);

    std::vector<int> fds;
    for (int shard = 0; shard < gvc_model_file_count(model); shard++) {
        int fd = open(gvc_model_file(model, shard), O_RDONLY | O_CLOEXEC);
        if (fd < 0) fprintf(stderr, "attach: cannot read %s (%s): its tensors are skipped\n", gvc_model_file(model, shard), strerror(errno));
        fds.push_back(fd);
    }
    std::vector<unsigned char> buffer((size_t)64 << 20);
    int rc = 0;
    for (int i = 0; i < gvc_device_count(model) && rc == 0; i++) rc = check_device(model, i, fds, buffer);
    for (int fd : fds)
        if (fd >= 0) close(fd);
    if (gvc_detach(model) != GVC_OK && rc == 0) rc = fail("detaching");
    gvc_close(conn);
    return rc;
}

/* ─── the benchmark ─────────────────────────────────────────────────────────── */

/* Touches the first byte of each device's memory from a kernel, and waits for it. */
static cudaError_t touch_devices(const gvc_attachment *model, unsigned char *scratch[], int n) {
    for (int i = 0; i < gvc_device_count(model) && i < n; i++) {
        int device = 0;
        void *base = NULL;
        gvc_device_at(model, i, &device, &base, NULL);
        cudaError_t err = cudaSetDevice(device);
        if (err == cudaSuccess) {
            touch_kernel<<<1, 1>>>((const unsigned char *)base, scratch[device]);
            err = cudaDeviceSynchronize();
        }
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}

static int benchmark(const char *model_name, const char *socket, int repeat) {
    double context_ms = 0;
    int visible = 0;
    if (create_contexts(&context_ms, &visible) != 0) return 1;
    std::vector<unsigned char *> scratch(visible, nullptr);
    for (int d = 0; d < visible; d++)
        if (cudaSetDevice(d) != cudaSuccess || cudaMalloc(&scratch[d], 1) != cudaSuccess) return cuda_fail("cudaMalloc", cudaGetLastError());
    std::vector<double> attach_ms, detach_ms;
    int tensors = 0, devices = 0;
    for (int r = 0; r < repeat; r++) {
        double start = now_ms();
        gvc_conn *conn = NULL;
        gvc_attachment *model = NULL;
        if (gvc_connect(socket, &conn) != GVC_OK) return fail("connecting");
        if (gvc_attach(conn, model_name, &model) != GVC_OK) return fail("attaching");
        cudaError_t err = touch_devices(model, scratch.data(), visible);
        double attached = now_ms();
        if (err != cudaSuccess) return cuda_fail("touching the model's memory", err);
        tensors = gvc_tensor_count(model);
        devices = gvc_device_count(model);
        if (gvc_detach(model) != GVC_OK) return fail("detaching");
        gvc_close(conn);
        attach_ms.push_back(attached - start);
        detach_ms.push_back(now_ms() - attached);
    }
    std::vector<double> sorted = attach_ms;
    std::sort(sorted.begin(), sorted.end());
    printf("{\"model\":\"%s\",\"repeat\":%d,\"devices\":%d,\"tensors\":%d,\"contextMs\":%.3f,\"medianAttachMs\":%.3f,\"attachMs\":[", model_name, repeat,
           devices, tensors, context_ms, sorted[sorted.size() / 2]);
    for (size_t i = 0; i < attach_ms.size(); i++) printf("%s%.3f", i ? "," : "", attach_ms[i]);
    printf("],\"detachMs\":[");
    for (size_t i = 0; i < detach_ms.size(); i++) printf("%s%.3f", i ? "," : "", detach_ms[i]);
    printf("]}\n");
    return 0;
}

/* ─── main ──────────────────────────────────────────────────────────────────── */

static int usage(void) {
    fprintf(stderr,
            "usage: attach <model path or id> [--socket PATH]\n"
            "       attach <model path or id> --repeat N --json [--socket PATH]\n"
            "  Attaches to a model that `gguf-vram serve` keeps in GPU memory and checks every tensor's\n"
            "  bytes against the file; --repeat times N connect + attach + first use, as JSON.\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *model = NULL, *socket = NULL;
    int repeat = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) socket = argv[++i];
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0) json = true;
        else if (argv[i][0] == '-' || model != NULL) return usage();
        else model = argv[i];
    }
    /* --repeat and --json go together: the benchmark prints one line of JSON a script reads. */
    if (model == NULL || model[0] == '\0' || (repeat > 0) != json || repeat < 0) return usage();
    return json ? benchmark(model, socket, repeat) : check_model(model, socket);
}
