/*
 * device.cu — counting, describing and selecting CUDA devices.
 *
 * The current device is per thread (each Bun Worker is its own thread), so
 * every call that takes a device index selects it before doing anything else.
 */
#include <string.h>

#include "internal.h"

/* ─── selection ─────────────────────────────────────────────────────────────── */

int gv_use_device(const char *fn, int device) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) return gv_fail_cuda(err, GV_ERR_CUDA, __FILE__, __LINE__, "%s: cudaGetDeviceCount", fn);
    if (count <= 0) return gv_fail(GV_ERR_NO_DEVICE, "%s: this machine has no CUDA device", fn);
    if (device < 0 || device >= count) {
        return gv_fail(GV_ERR_BAD_DEVICE, "%s: device %d does not exist: this machine has %d CUDA device%s (0..%d)",
                       fn, device, count, count == 1 ? "" : "s", count - 1);
    }
    err = cudaSetDevice(device);
    if (err != cudaSuccess) return gv_fail_cuda(err, GV_ERR_CUDA, __FILE__, __LINE__, "%s: cudaSetDevice(%d)", fn, device);
    return GV_OK;
}

/* ─── API ───────────────────────────────────────────────────────────────────── */

extern "C" int gv_device_count(int *count) {
    GV_REQUIRE(count != NULL, "gv_device_count: count is NULL");
    *count = 0;
    cudaError_t err = cudaGetDeviceCount(count);
    if (err != cudaSuccess) return gv_fail_cuda(err, GV_ERR_CUDA, __FILE__, __LINE__, "gv_device_count: cudaGetDeviceCount");
    return GV_OK;
}

extern "C" int gv_device_info_get(int device, gv_device_info *out) {
    GV_REQUIRE(out != NULL, "gv_device_info_get: out is NULL");
    memset(out, 0, sizeof *out);
    int rc = gv_use_device("gv_device_info_get", device);
    if (rc != GV_OK) return rc;

    cudaDeviceProp prop;
    GV_CUDA(cudaGetDeviceProperties(&prop, device), GV_ERR_CUDA);
    size_t free_bytes = 0, total_bytes = 0;
    GV_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes), GV_ERR_CUDA);

    memcpy(out->name, prop.name, sizeof out->name - 1); /* both are char[256]; out was zeroed */
    out->major = prop.major;
    out->minor = prop.minor;
    out->multiprocessors = prop.multiProcessorCount;
    out->pci_bus = prop.pciBusID;
    out->pci_device = prop.pciDeviceID;
    out->pci_domain = prop.pciDomainID;
    out->total_bytes = prop.totalGlobalMem;
    out->free_bytes = free_bytes;
    return GV_OK;
}

extern "C" int gv_device_init(int device) {
    int rc = gv_use_device("gv_device_init", device);
    if (rc != GV_OK) return rc;
    GV_CUDA(cudaFree(0), GV_ERR_CUDA); /* creates the primary context; a no-op once it exists */
    return GV_OK;
}

extern "C" int gv_mem_info(int device, uint64_t *free_bytes, uint64_t *total_bytes) {
    GV_REQUIRE(free_bytes != NULL && total_bytes != NULL, "gv_mem_info: free_bytes and total_bytes must not be NULL");
    *free_bytes = 0;
    *total_bytes = 0;
    int rc = gv_use_device("gv_mem_info", device);
    if (rc != GV_OK) return rc;
    size_t free_now = 0, total = 0;
    GV_CUDA(cudaMemGetInfo(&free_now, &total), GV_ERR_CUDA);
    *free_bytes = free_now;
    *total_bytes = total;
    return GV_OK;
}
