/*
 * vmm.h — CUDA's virtual memory management (the driver's cuMem* calls), reached
 * through cudaGetDriverEntryPointByVersion so that nothing links libcuda at
 * build time (machines without a driver still load the library and report
 * "no CUDA device"). Shared by libgguf_vram (shareable arenas, exported as POSIX
 * file descriptors) and libgguf_vram_client (attaching to them in another process).
 *
 * Every function returns a CUresult and, on failure, names the driver call that
 * failed in *failed; the caller turns that into its own last-error message.
 */
#ifndef GGUF_VRAM_VMM_H
#define GGUF_VRAM_VMM_H

#include <stdint.h>

#include <cuda.h>

/* One mapping of a physical allocation into this process's address space. */
typedef struct gv_vmm_mapping {
    CUdeviceptr ptr;
    uint64_t bytes;                      /* the allocation's size: a multiple of the granularity */
    CUmemGenericAllocationHandle handle; /* 0 once released (a mapping keeps the memory alive by itself) */
} gv_vmm_mapping;

/* The driver's message for a CUresult ("unknown" when the driver has none). */
const char *gv_vmm_error_string(CUresult rc);

/* `bytes` rounded up to the device's allocation granularity for shareable memory. */
CUresult gv_vmm_round(int device, uint64_t bytes, uint64_t *rounded, const char **failed);

/* A new allocation of `bytes` (a multiple of the granularity) on `device`, exportable as a POSIX
 * file descriptor, mapped read-write for `device` and for every device in peers[0..n_peers). */
CUresult gv_vmm_create(int device, uint64_t bytes, const int *peers, int n_peers, gv_vmm_mapping *out, const char **failed);

/* Maps an allocation received as `fd` (the fd stays the caller's to close), read-write for `device`.
 * The imported handle is released once mapped: the mapping alone keeps the memory alive. */
CUresult gv_vmm_import(int fd, uint64_t bytes, int device, gv_vmm_mapping *out, const char **failed);

/* A new POSIX file descriptor for the mapping's allocation (its handle must not be released). */
CUresult gv_vmm_export(const gv_vmm_mapping *m, int *fd, const char **failed);

/* Unmaps, frees the address range and releases the handle; tries every step, returns the first failure.
 * The caller makes sure no GPU work still uses the memory. */
CUresult gv_vmm_unmap(gv_vmm_mapping *m, const char **failed);

#endif /* GGUF_VRAM_VMM_H */
