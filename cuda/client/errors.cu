/*
 * errors.cu — the client's thread-local last error: one sentence, and for a
 * server's refusal the server's code. A success leaves both alone.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

static thread_local char last_error[1024];
static thread_local char last_code[64];

int gvc_fail(int status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    last_code[0] = '\0';
    return status;
}

int gvc_fail_os(int os_error, int status, const char *fmt, ...) {
    char what[768];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    return gvc_fail(status, "%s: %s", what, strerror(os_error));
}

int gvc_fail_server(const char *code, const char *message, const char *hint) {
    if (hint != NULL && hint[0] != '\0') gvc_fail(GVC_ERR_SERVER, "%s (%s)", message, hint);
    else gvc_fail(GVC_ERR_SERVER, "%s", message);
    snprintf(last_code, sizeof last_code, "%s", code);
    return GVC_ERR_SERVER;
}

int gvc_fail_wire(const char *fn, int wire_result, const gv_wire_status *why) {
    switch (wire_result) {
    case GV_WIRE_CLOSED: return gvc_fail(GVC_ERR_DISCONNECTED, "%s: the server closed the connection (it stopped, or was killed)", fn);
    case GV_WIRE_PROTOCOL: return gvc_fail(GVC_ERR_PROTOCOL, "%s: the server sent a bad frame: %s", fn, why->message);
    case GV_WIRE_MEMORY: return gvc_fail(GVC_ERR_HOST_MEMORY, "%s: %s", fn, why->message);
    default: return gvc_fail_os(why->os_error, GVC_ERR_SOCKET, "%s: %s", fn, why->message);
    }
}

void gvc_save_error(gvc_saved_error *saved) {
    memcpy(saved->message, last_error, sizeof saved->message);
    memcpy(saved->code, last_code, sizeof saved->code);
}

void gvc_restore_error(const gvc_saved_error *saved) {
    memcpy(last_error, saved->message, sizeof last_error);
    memcpy(last_code, saved->code, sizeof last_code);
}

extern "C" const char *gvc_last_error(void) { return last_error; }
extern "C" const char *gvc_last_error_code(void) { return last_code; }
extern "C" void gvc_free(void *p) { free(p); }
