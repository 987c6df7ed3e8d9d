/*
 * vmm.cu — the driver's virtual memory calls, found once through the runtime's
 * cudaGetDriverEntryPointByVersion (no -lcuda: the runtime opens the driver
 * when the first CUDA call needs it), and the few steps built on them.
 */
#include <mutex>

#include <cuda_runtime.h>

#include "vmm.h"

/* The driver ABI asked for: these calls are unchanged since CUDA 12.0. */
#define VMM_DRIVER_VERSION 12000

struct vmm_api {
    CUresult (*granularity)(size_t *, const CUmemAllocationProp *, CUmemAllocationGranularity_flags);
    CUresult (*create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long);
    CUresult (*release)(CUmemGenericAllocationHandle);
    CUresult (*reserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
    CUresult (*address_free)(CUdeviceptr, size_t);
    CUresult (*map)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
    CUresult (*unmap)(CUdeviceptr, size_t);
    CUresult (*set_access)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
    CUresult (*export_handle)(void *, CUmemGenericAllocationHandle, CUmemAllocationHandleType, unsigned long long);
    CUresult (*import_handle)(CUmemGenericAllocationHandle *, void *, CUmemAllocationHandleType);
    CUresult (*error_string)(CUresult, const char **);
};

static vmm_api api;
static CUresult api_status = CUDA_ERROR_NOT_INITIALIZED;
static const char *api_missing = "cudaGetDriverEntryPointByVersion";
static std::once_flag api_once;

static void resolve(void) {
    struct entry {
        const char *symbol;
        void **slot;
    } entries[] = {
        {"cuMemGetAllocationGranularity", (void **)&api.granularity},
        {"cuMemCreate", (void **)&api.create},
        {"cuMemRelease", (void **)&api.release},
        {"cuMemAddressReserve", (void **)&api.reserve},
        {"cuMemAddressFree", (void **)&api.address_free},
        {"cuMemMap", (void **)&api.map},
        {"cuMemUnmap", (void **)&api.unmap},
        {"cuMemSetAccess", (void **)&api.set_access},
        {"cuMemExportToShareableHandle", (void **)&api.export_handle},
        {"cuMemImportFromShareableHandle", (void **)&api.import_handle},
        {"cuGetErrorString", (void **)&api.error_string},
    };
    for (const entry &e : entries) {
        cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
        cudaError_t err = cudaGetDriverEntryPointByVersion(e.symbol, e.slot, VMM_DRIVER_VERSION, cudaEnableDefault, &found);
        if (err != cudaSuccess || found != cudaDriverEntryPointSuccess || *e.slot == NULL) {
            cudaGetLastError();
            api_missing = e.symbol;
            /* No driver at all reads as "no device" to the callers, like every other CUDA call here. */
            api_status = err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice ? CUDA_ERROR_NO_DEVICE : CUDA_ERROR_NOT_FOUND;
            return;
        }
    }
    api_status = CUDA_SUCCESS;
}

static CUresult ready(const char **failed) {
    std::call_once(api_once, resolve);
    if (api_status != CUDA_SUCCESS) *failed = api_missing;
    return api_status;
}

#define VMM_TRY(call, name)                 \
    do {                                    \
        CUresult rc_ = (call);              \
        if (rc_ != CUDA_SUCCESS) {          \
            *failed = name;                 \
            return rc_;                     \
        }                                   \
    } while (0)

const char *gv_vmm_error_string(CUresult rc) {
    const char *text = NULL;
    if (api.error_string == NULL || api.error_string(rc, &text) != CUDA_SUCCESS || text == NULL) {
        return rc == CUDA_ERROR_NO_DEVICE ? "no CUDA driver or device" : rc == CUDA_ERROR_NOT_FOUND ? "the driver lacks this call" : "unknown";
    }
    return text;
}

static CUmemAllocationProp shareable_prop(int device) {
    CUmemAllocationProp prop = {};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = device;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    return prop;
}

CUresult gv_vmm_round(int device, uint64_t bytes, uint64_t *rounded, const char **failed) {
    VMM_TRY(ready(failed), *failed);
    CUmemAllocationProp prop = shareable_prop(device);
    size_t granularity = 0;
    VMM_TRY(api.granularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM), "cuMemGetAllocationGranularity");
    if (granularity == 0) granularity = 2u << 20;
    if (bytes > UINT64_MAX - (granularity - 1)) {
        *failed = "cuMemGetAllocationGranularity (the size overflows)";
        return CUDA_ERROR_INVALID_VALUE;
    }
    *rounded = (bytes + granularity - 1) / granularity * granularity;
    return CUDA_SUCCESS;
}

/* Maps `handle` at a fresh address range and grants read-write to each device; undoes it all on failure. */
static CUresult map_handle(CUmemGenericAllocationHandle handle, uint64_t bytes, const int *devices, int n, gv_vmm_mapping *out,
                           const char **failed) {
    CUdeviceptr ptr = 0;
    VMM_TRY(api.reserve(&ptr, bytes, 0, 0, 0), "cuMemAddressReserve");
    CUresult rc = api.map(ptr, bytes, 0, handle, 0);
    if (rc != CUDA_SUCCESS) {
        *failed = "cuMemMap";
        api.address_free(ptr, bytes);
        return rc;
    }
    for (int i = 0; i < n && rc == CUDA_SUCCESS; i++) {
        CUmemAccessDesc access = {};
        access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        access.location.id = devices[i];
        access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
        rc = api.set_access(ptr, bytes, &access, 1);
        if (rc != CUDA_SUCCESS) *failed = "cuMemSetAccess";
    }
    if (rc != CUDA_SUCCESS) {
        api.unmap(ptr, bytes);
        api.address_free(ptr, bytes);
        return rc;
    }
    out->ptr = ptr;
    out->bytes = bytes;
    return CUDA_SUCCESS;
}

CUresult gv_vmm_create(int device, uint64_t bytes, const int *peers, int n_peers, gv_vmm_mapping *out, const char **failed) {
    *out = gv_vmm_mapping{};
    VMM_TRY(ready(failed), *failed);
    CUmemAllocationProp prop = shareable_prop(device);
    CUmemGenericAllocationHandle handle = 0;
    VMM_TRY(api.create(&handle, bytes, &prop, 0), "cuMemCreate");
    int devices[65];
    int n = 0;
    devices[n++] = device;
    for (int i = 0; i < n_peers && n < 65; i++)
        if (peers[i] != device) devices[n++] = peers[i];
    CUresult rc = map_handle(handle, bytes, devices, n, out, failed);
    if (rc != CUDA_SUCCESS) {
        api.release(handle);
        return rc;
    }
    out->handle = handle;
    return CUDA_SUCCESS;
}

CUresult gv_vmm_import(int fd, uint64_t bytes, int device, gv_vmm_mapping *out, const char **failed) {
    *out = gv_vmm_mapping{};
    VMM_TRY(ready(failed), *failed);
    CUmemGenericAllocationHandle handle = 0;
    VMM_TRY(api.import_handle(&handle, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR),
            "cuMemImportFromShareableHandle");
    CUresult rc = map_handle(handle, bytes, &device, 1, out, failed);
    CUresult released = api.release(handle); /* the mapping holds the memory from here */
    if (rc != CUDA_SUCCESS) return rc;
    if (released != CUDA_SUCCESS) {
        *failed = "cuMemRelease";
        api.unmap(out->ptr, out->bytes);
        api.address_free(out->ptr, out->bytes);
        *out = gv_vmm_mapping{};
        return released;
    }
    return CUDA_SUCCESS;
}

CUresult gv_vmm_export(const gv_vmm_mapping *m, int *fd, const char **failed) {
    *fd = -1;
    VMM_TRY(ready(failed), *failed);
    if (m->handle == 0) {
        *failed = "cuMemExportToShareableHandle (the allocation's handle was released)";
        return CUDA_ERROR_INVALID_HANDLE;
    }
    int out = -1;
    VMM_TRY(api.export_handle(&out, m->handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0), "cuMemExportToShareableHandle");
    *fd = out;
    return CUDA_SUCCESS;
}

CUresult gv_vmm_unmap(gv_vmm_mapping *m, const char **failed) {
    VMM_TRY(ready(failed), *failed);
    CUresult first = CUDA_SUCCESS;
    const char *first_call = NULL;
    CUresult rc = api.unmap(m->ptr, m->bytes);
    if (rc != CUDA_SUCCESS && first == CUDA_SUCCESS) first = rc, first_call = "cuMemUnmap";
    rc = api.address_free(m->ptr, m->bytes);
    if (rc != CUDA_SUCCESS && first == CUDA_SUCCESS) first = rc, first_call = "cuMemAddressFree";
    if (m->handle != 0) {
        rc = api.release(m->handle);
        if (rc != CUDA_SUCCESS && first == CUDA_SUCCESS) first = rc, first_call = "cuMemRelease";
    }
    *m = gv_vmm_mapping{};
    if (first != CUDA_SUCCESS) *failed = first_call;
    return first;
}
