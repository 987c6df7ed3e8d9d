/*
 * ipc_client.cu — a client's side of the resident-model socket, for Bun
 * (gguf_vram.h: gv_ipc_connect … gv_ipc_close). C programs have their own,
 * libgguf_vram_client; both read frames with wire.cu.
 *
 * The socket is non-blocking; a request waits in poll() until it is written,
 * and gv_ipc_poll waits in poll() for a whole frame, up to its timeout. After
 * a protocol error or the server's close, every later call says so again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "ipc.h"

struct gv_ipc_client {
    int sock;
    gv_wire_reader reader;
    gv_wire_frame *ready; /* announced by gv_ipc_poll, not yet taken */
    int broken;           /* the status every call returns once the connection failed (GV_OK while it works) */
    char broken_message[320];
};

/* Records a failure that ends the connection, so later calls report it too. */
static int break_client(gv_ipc_client *client, int status) {
    client->broken = status;
    snprintf(client->broken_message, sizeof client->broken_message, "%s", gv_last_error());
    return status;
}

static int still_broken(const gv_ipc_client *client) { return gv_fail(client->broken, "%s", client->broken_message); }

extern "C" int gv_ipc_connect(const char *path, gv_ipc_client **out) {
    GV_REQUIRE(out != NULL, "gv_ipc_connect: out is NULL");
    *out = NULL;
    GV_REQUIRE(path != NULL && path[0] != '\0', "gv_ipc_connect: the socket path is empty");
    int sock = -1;
    gv_wire_status why;
    if (gv_wire_connect(path, &sock, &why) != GV_WIRE_OK) {
        int err = why.os_error;
        if (err == ENOENT || err == ECONNREFUSED) return gv_fail_os(err, GV_ERR_NO_SERVER, "gv_ipc_connect: no server listens at %s", path);
        return gv_fail_os(err, GV_ERR_SOCKET, "gv_ipc_connect: %s", why.message);
    }
    gv_ipc_client *client = (gv_ipc_client *)calloc(1, sizeof *client);
    if (client == NULL) {
        close(sock);
        return gv_fail_os(ENOMEM, GV_ERR_HOST_MEMORY, "gv_ipc_connect: setting up the connection to %s", path);
    }
    client->sock = sock;
    gv_wire_reader_init(&client->reader, gv_wire_reply_limits());
    *out = client;
    return GV_OK;
}

extern "C" int gv_ipc_request(gv_ipc_client *client, const void *json, uint64_t json_bytes) {
    GV_REQUIRE(client != NULL && (json != NULL || json_bytes == 0), "gv_ipc_request: client and json must not be NULL");
    GV_REQUIRE(json_bytes <= GV_WIRE_MAX_REQUEST, "gv_ipc_request: a request of %llu bytes, over the limit of %u (cuda/wire.h)",
               (unsigned long long)json_bytes, GV_WIRE_MAX_REQUEST);
    if (client->broken) return still_broken(client);
    gv_wire_out *frame = NULL;
    gv_wire_status why;
    int rc = gv_wire_out_make(json, json_bytes, NULL, 0, NULL, 0, GV_WIRE_MAX_REQUEST, 0, &frame, &why);
    while (rc == GV_WIRE_OK || rc == GV_WIRE_AGAIN) {
        rc = gv_wire_out_write(client->sock, frame, &why);
        if (rc != GV_WIRE_AGAIN) break;
        struct pollfd writable = {client->sock, POLLOUT, 0};
        poll(&writable, 1, -1);
    }
    gv_wire_out_free(frame);
    if (rc == GV_WIRE_OK) return GV_OK;
    int status = gv_fail_wire("gv_ipc_request", rc, &why);
    return rc == GV_WIRE_MEMORY ? status : break_client(client, status);
}

/* Reads until a whole frame is buffered (client->ready) or the time is up. */
static int read_frame(gv_ipc_client *client, int timeout_ms) {
    int64_t deadline = timeout_ms < 0 ? -1 : ipc_now_ms() + timeout_ms;
    for (;;) {
        gv_wire_status why;
        int ready = 0;
        int rc = gv_wire_next(&client->reader, &client->ready, &ready, &why);
        if (rc == GV_WIRE_OK && ready) return GV_OK;
        if (rc == GV_WIRE_OK) rc = gv_wire_read(client->sock, &client->reader, &why);
        if (rc == GV_WIRE_OK) continue;
        if (rc == GV_WIRE_CLOSED && gv_wire_pending(&client->reader) > 0) {
            gv_fail(GV_ERR_PROTOCOL, "gv_ipc_poll: the server closed the connection in the middle of a frame (%llu bytes of it came)",
                    (unsigned long long)gv_wire_pending(&client->reader));
            return break_client(client, GV_ERR_PROTOCOL);
        }
        if (rc != GV_WIRE_AGAIN) {
            int status = gv_fail_wire("gv_ipc_poll", rc, &why);
            return rc == GV_WIRE_MEMORY ? status : break_client(client, status);
        }
        int64_t left = deadline < 0 ? -1 : deadline - ipc_now_ms();
        if (deadline >= 0 && left <= 0) return GV_OK;
        struct pollfd readable = {client->sock, POLLIN, 0};
        if (poll(&readable, 1, (int)left) < 0 && errno != EINTR) return gv_fail_os(errno, GV_ERR_SOCKET, "gv_ipc_poll: poll");
    }
}

extern "C" int gv_ipc_poll(gv_ipc_client *client, int timeout_ms, int *ready, uint64_t *json_bytes, uint64_t *bin_bytes, uint32_t *n_fds) {
    GV_REQUIRE(ready != NULL && json_bytes != NULL && bin_bytes != NULL && n_fds != NULL, "gv_ipc_poll: an output is NULL");
    *ready = 0;
    *json_bytes = *bin_bytes = 0;
    *n_fds = 0;
    GV_REQUIRE(client != NULL, "gv_ipc_poll: client is NULL");
    if (client->ready == NULL) {
        if (client->broken) return still_broken(client);
        int rc = read_frame(client, timeout_ms);
        if (rc != GV_OK) return rc;
        if (client->ready == NULL) return GV_OK;
    }
    *ready = 1;
    *json_bytes = client->ready->json_bytes;
    *bin_bytes = client->ready->bin_bytes;
    *n_fds = client->ready->n_fds;
    return GV_OK;
}

extern "C" int gv_ipc_take(gv_ipc_client *client, void *json, void *bin, int *fds) {
    GV_REQUIRE(client != NULL && client->ready != NULL, "gv_ipc_take: no frame was announced by gv_ipc_poll");
    gv_wire_frame *frame = client->ready;
    GV_REQUIRE((json != NULL || frame->json_bytes == 0) && (bin != NULL || frame->bin_bytes == 0) && (fds != NULL || frame->n_fds == 0),
               "gv_ipc_take: a destination the frame needs is NULL");
    if (frame->json_bytes) memcpy(json, frame->json, frame->json_bytes);
    if (frame->bin_bytes) memcpy(bin, frame->bin, frame->bin_bytes);
    for (uint32_t i = 0; i < frame->n_fds; i++) {
        fds[i] = frame->fds[i];
        frame->fds[i] = -1; /* the caller's now */
    }
    gv_wire_frame_free(frame);
    client->ready = NULL;
    return GV_OK;
}

extern "C" int gv_ipc_close(gv_ipc_client *client) {
    if (client == NULL) return GV_OK;
    gv_wire_frame_free(client->ready);
    gv_wire_reader_free(&client->reader);
    close(client->sock);
    free(client);
    return GV_OK;
}
