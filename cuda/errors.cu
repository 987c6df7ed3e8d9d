/*
 * errors.cu — the thread-local last error, the CUDA-error → gv_status mapping,
 * and the version getters.
 *
 * A failure writes its message into this thread's buffer; success leaves the
 * buffer alone, so gv_last_error() tells the last failure on this thread (""
 * when there has been none) until the next failure overwrites it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static thread_local char last_error[1024];
static thread_local int last_cuda_error;
static thread_local int last_os_error;

/* ─── recording ─────────────────────────────────────────────────────────────── */

static void record(cudaError_t err, const char *fmt, va_list args) {
    vsnprintf(last_error, sizeof last_error, fmt, args);
    last_cuda_error = (int)err;
    last_os_error = 0;
}

int gv_fail(int status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    record(cudaSuccess, fmt, args);
    va_end(args);
    return status;
}

int gv_fail_os(int os_error, int status, const char *fmt, ...) {
    char what[768];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    snprintf(last_error, sizeof last_error, "%s: %s", what, strerror(os_error));
    last_cuda_error = 0;
    last_os_error = os_error;
    return status;
}

int gv_cuda_status(cudaError_t err, int status) {
    switch (err) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
    case cudaErrorStubLibrary:
    case cudaErrorDevicesUnavailable:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorSystemNotReady:
        return GV_ERR_NO_DEVICE;
    case cudaErrorInvalidDevice:
        return GV_ERR_BAD_DEVICE;
    case cudaErrorMemoryAllocation:
        return status == GV_ERR_HOST_MEMORY ? GV_ERR_HOST_MEMORY : GV_ERR_OUT_OF_MEMORY;
    default:
        return status;
    }
}

int gv_fail_cuda(cudaError_t err, int status, const char *file, int line, const char *fmt, ...) {
    char what[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    cudaGetLastError(); /* clears the error unless it is sticky */
    snprintf(last_error, sizeof last_error, "%s failed: %s (%s, %d) at %s:%d", what,
             cudaGetErrorString(err), cudaGetErrorName(err), (int)err, file, line);
    last_cuda_error = (int)err;
    last_os_error = 0;
    return gv_cuda_status(err, status);
}

/* ─── API ───────────────────────────────────────────────────────────────────── */

extern "C" int gv_abi_version(void) { return GV_ABI_VERSION; }

extern "C" const char *gv_last_error(void) { return last_error; }

extern "C" int gv_last_cuda_error(void) { return last_cuda_error; }

extern "C" int gv_last_os_error(void) { return last_os_error; }

extern "C" int gv_versions(int *runtime, int *driver) {
    GV_REQUIRE(runtime != NULL && driver != NULL, "gv_versions: runtime and driver must not be NULL");
    *runtime = 0;
    *driver = 0;
    GV_CUDA(cudaRuntimeGetVersion(runtime), GV_ERR_CUDA);
    GV_CUDA(cudaDriverGetVersion(driver), GV_ERR_CUDA); /* 0, not an error, without a driver */
    return GV_OK;
}
