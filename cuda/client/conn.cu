/*
 * conn.cu — the client's connection: connecting and greeting the server, and
 * the one exchange every call is made of: a request with a fresh id, then the
 * reply with that id, skipping load events on the way.
 *
 * Every frame is the server's word, not a fact: its JSON is checked whole
 * before a field is read, and a frame that fails any check ends the
 * connection (GVC_ERR_PROTOCOL, then the same for every later call).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool gvc_json_escape(const char *text, char *out, size_t cap) {
    size_t at = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
        if (at + 7 >= cap) return false;
        if (*c == '"' || *c == '\\') out[at++] = '\\', out[at++] = (char)*c;
        else if (*c < 0x20) at += (size_t)snprintf(out + at, cap - at, "\\u%04x", *c);
        else out[at++] = (char)*c;
    }
    out[at] = '\0';
    return true;
}

/* Records a failure that ends the connection; every later call reports it again. */
static int break_conn(gvc_conn *conn, int status) {
    conn->broken = status;
    snprintf(conn->broken_message, sizeof conn->broken_message, "%s", gvc_last_error());
    return status;
}

/* ─── one exchange ──────────────────────────────────────────────────────────── */

static int send_request(gvc_conn *conn, const char *fn, const char *text, size_t bytes, int64_t deadline) {
    gv_wire_out *frame = NULL;
    gv_wire_status why;
    int rc = gv_wire_out_make(text, bytes, NULL, 0, NULL, 0, GV_WIRE_MAX_REQUEST, 0, &frame, &why);
    if (rc == GV_WIRE_PROTOCOL)
        return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "%s: a request of %zu bytes, over the limit of %u", fn, bytes, GV_WIRE_MAX_REQUEST);
    while (rc == GV_WIRE_OK) {
        rc = gv_wire_out_write(conn->sock, frame, &why);
        if (rc != GV_WIRE_AGAIN) break;
        int64_t left = deadline < 0 ? -1 : deadline - now_ms();
        struct pollfd writable = {conn->sock, POLLOUT, 0};
        if (deadline >= 0 && left <= 0) {
            gv_wire_out_free(frame);
            return break_conn(conn, gvc_fail(GVC_ERR_TIMEOUT, "%s: the server at %s takes no requests", fn, conn->socket_path));
        }
        poll(&writable, 1, (int)left);
        rc = GV_WIRE_OK;
    }
    gv_wire_out_free(frame);
    if (rc == GV_WIRE_OK) return GVC_OK;
    return break_conn(conn, gvc_fail_wire(fn, rc, &why));
}

/* Whether a checked reply answers request `id`: its id, or id null on a failure (the server's word on the
 * connection itself: a bad request, another user's connection). Events and other ids are not. */
static bool answers(const char *json, gvc_span root, uint32_t id) {
    gvc_span value;
    if (gvc_json_member(json, root, "event", &value)) return false;
    if (!gvc_json_member(json, root, "id", &value)) return false;
    int64_t got = -1;
    if (gvc_json_int(json, value, &got)) return got == (int64_t)id;
    bool ok = true;
    gvc_span ok_value;
    return gvc_json_is_null(json, value) && gvc_json_member(json, root, "ok", &ok_value) && gvc_json_bool(json, ok_value, &ok) && !ok;
}

/* Reads frames until the one that answers `id`: GVC_OK with it in *frame, or a failure. */
static int receive_reply(gvc_conn *conn, const char *fn, uint32_t id, int timeout_ms, int64_t deadline, gv_wire_frame **frame, gvc_span *root) {
    for (;;) {
        gv_wire_status why;
        int ready = 0;
        int rc = gv_wire_next(&conn->reader, frame, &ready, &why);
        if (rc == GV_WIRE_OK && ready) {
            char problem[160];
            if (!gvc_json_check((*frame)->json, (*frame)->json_bytes, root, problem, sizeof problem)) {
                gv_wire_frame_free(*frame);
                *frame = NULL;
                return break_conn(conn, gvc_fail(GVC_ERR_PROTOCOL, "%s: the server's reply is not a JSON object: %s", fn, problem));
            }
            if (answers((*frame)->json, *root, id)) return GVC_OK;
            gv_wire_frame_free(*frame); /* an event, or another request's reply: its descriptors are closed */
            *frame = NULL;
            continue;
        }
        if (rc == GV_WIRE_OK) rc = gv_wire_read(conn->sock, &conn->reader, &why);
        if (rc == GV_WIRE_OK) continue;
        if (rc == GV_WIRE_CLOSED && gv_wire_pending(&conn->reader) > 0)
            return break_conn(conn, gvc_fail(GVC_ERR_PROTOCOL, "%s: the server closed the connection in the middle of a frame (%llu bytes of it came)",
                                              fn, (unsigned long long)gv_wire_pending(&conn->reader)));
        if (rc != GV_WIRE_AGAIN) return break_conn(conn, gvc_fail_wire(fn, rc, &why));
        int64_t left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left <= 0)
            return gvc_fail(GVC_ERR_TIMEOUT, "%s: the server at %s did not answer within %d ms", fn, conn->socket_path, timeout_ms);
        struct pollfd readable = {conn->sock, POLLIN, 0};
        if (poll(&readable, 1, (int)left) < 0 && errno != EINTR) return break_conn(conn, gvc_fail_os(errno, GVC_ERR_SOCKET, "%s: poll", fn));
    }
}

/* A refusal's code, message and hint, as the last error. */
static int server_refusal(const char *fn, const gvc_reply *reply) {
    const char *json = reply->frame->json;
    gvc_span error, value;
    char code[64] = "", message[512] = "", hint[512] = "";
    size_t n = 0;
    if (!gvc_json_member(json, reply->root, "error", &error) || !gvc_json_member(json, error, "code", &value) ||
        !gvc_json_string(json, value, code, sizeof code, &n))
        return gvc_fail(GVC_ERR_PROTOCOL, "%s: the server refused the request without an error code", fn);
    if (gvc_json_member(json, error, "message", &value) && !gvc_json_string(json, value, message, sizeof message, &n))
        snprintf(message, sizeof message, "the server refused the request (%s)", code);
    if (message[0] == '\0') snprintf(message, sizeof message, "the server refused the request (%s)", code);
    if (gvc_json_member(json, error, "hint", &value) && !gvc_json_string(json, value, hint, sizeof hint, &n)) hint[0] = '\0';
    return gvc_fail_server(code, message, hint);
}

int gvc_call(gvc_conn *conn, const char *fn, const char *fields, int timeout_ms, gvc_reply *reply) {
    reply->frame = NULL;
    if (conn->broken) return gvc_fail(conn->broken, "%s", conn->broken_message);
    uint32_t id = conn->next_id;
    conn->next_id = conn->next_id >= INT32_MAX ? 1 : conn->next_id + 1;
    size_t cap = strlen(fields) + 48;
    char *text = (char *)malloc(cap);
    if (text == NULL) return gvc_fail(GVC_ERR_HOST_MEMORY, "%s: malloc of a %zu-byte request failed", fn, cap);
    int n = snprintf(text, cap, "{\"v\":1,\"id\":%u%s%s}", id, fields[0] ? "," : "", fields);
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int rc = send_request(conn, fn, text, (size_t)n, deadline);
    free(text);
    if (rc != GVC_OK) return rc;
    rc = receive_reply(conn, fn, id, timeout_ms, deadline, &reply->frame, &reply->root);
    if (rc != GVC_OK) return rc;
    gvc_span ok_value;
    bool ok = false;
    if (!gvc_json_member(reply->frame->json, reply->root, "ok", &ok_value) || !gvc_json_bool(reply->frame->json, ok_value, &ok)) {
        gvc_reply_free(reply);
        return break_conn(conn, gvc_fail(GVC_ERR_PROTOCOL, "%s: the server's reply has no \"ok\" true or false", fn));
    }
    if (ok) return GVC_OK;
    rc = server_refusal(fn, reply);
    if (rc == GVC_ERR_PROTOCOL) {
        gvc_reply_free(reply);
        return break_conn(conn, rc);
    }
    return rc;
}

void gvc_reply_free(gvc_reply *reply) {
    gv_wire_frame_free(reply->frame);
    reply->frame = NULL;
}
