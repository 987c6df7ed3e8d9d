/*
 * requests.cu — the client's API calls that are one exchange each: connecting
 * (with the hello), any request as JSON, loading a model, closing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

/* A server that accepted but does not greet within this is stuck. */
#define HELLO_TIMEOUT_MS 10000

extern "C" int gvc_default_socket(char *buf, size_t bytes) {
    if (buf == NULL || bytes == 0) return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_default_socket: buf is NULL or empty");
    const char *chosen = getenv("GGUF_VRAM_SOCKET");
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    int n;
    if (chosen != NULL && chosen[0] != '\0') n = snprintf(buf, bytes, "%s", chosen);
    else if (runtime != NULL && runtime[0] == '/') n = snprintf(buf, bytes, "%s/gguf-vram/serve.sock", runtime);
    else n = snprintf(buf, bytes, "/tmp/gguf-vram-%u/serve.sock", (unsigned)getuid());
    if (n < 0 || (size_t)n >= bytes) {
        buf[0] = '\0';
        return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_default_socket: the path needs %d bytes; buf has %zu", n + 1, bytes);
    }
    return GVC_OK;
}

/* A connected, non-blocking socket to `path`. */
static int open_socket(const char *path, int *out) {
    gv_wire_status why;
    if (gv_wire_connect(path, out, &why) == GV_WIRE_OK) return GVC_OK;
    int err = why.os_error;
    if (err == ENOENT || err == ECONNREFUSED)
        return gvc_fail(GVC_ERR_NO_SERVER, "gvc_connect: no gguf-vram server listens at %s (%s); start one with `gguf-vram serve`", path, strerror(err));
    return gvc_fail_os(err, GVC_ERR_SOCKET, "gvc_connect: %s", why.message);
}

extern "C" int gvc_connect(const char *socket_path, gvc_conn **out) {
    if (out == NULL) return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_connect: out is NULL");
    *out = NULL;
    char fallback[sizeof ((gvc_conn *)0)->socket_path];
    if (socket_path == NULL) {
        int rc = gvc_default_socket(fallback, sizeof fallback);
        if (rc != GVC_OK) return gvc_fail(GVC_ERR_SOCKET, "gvc_connect: the default socket path is too long for a Unix socket");
        socket_path = fallback;
    }
    if (socket_path[0] == '\0') return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_connect: the socket path is empty");
    int sock = -1;
    int rc = open_socket(socket_path, &sock);
    if (rc != GVC_OK) return rc;
    gvc_conn *conn = (gvc_conn *)calloc(1, sizeof *conn);
    if (conn == NULL) {
        close(sock);
        return gvc_fail(GVC_ERR_HOST_MEMORY, "gvc_connect: malloc of the connection failed");
    }
    conn->sock = sock;
    conn->next_id = 1;
    snprintf(conn->socket_path, sizeof conn->socket_path, "%s", socket_path);
    gv_wire_reader_init(&conn->reader, gv_wire_reply_limits());

    char hello[128];
    snprintf(hello, sizeof hello, "\"op\":\"hello\",\"client\":\"libgguf_vram_client\",\"pid\":%ld", (long)getpid());
    gvc_reply reply;
    rc = gvc_call(conn, "gvc_connect", hello, HELLO_TIMEOUT_MS, &reply);
    if (rc == GVC_OK) {
        gvc_span value;
        int64_t protocol = 0;
        if (!gvc_json_member(reply.frame->json, reply.root, "protocol", &value) || !gvc_json_int(reply.frame->json, value, &protocol) || protocol != 1)
            rc = gvc_fail(GVC_ERR_PROTOCOL, "gvc_connect: the server at %s does not speak protocol 1 (its hello says %.*s)", socket_path,
                          (int)(reply.root.end - reply.root.at > 200 ? 200 : reply.root.end - reply.root.at), reply.frame->json + reply.root.at);
    }
    gvc_reply_free(&reply);
    if (rc != GVC_OK) {
        gvc_close(conn);
        return rc;
    }
    *out = conn;
    return GVC_OK;
}

extern "C" void gvc_close(gvc_conn *conn) {
    if (conn == NULL) return;
    for (gvc_attachment *a = conn->attachments; a != NULL; a = a->next_of_conn) a->conn = NULL;
    gv_wire_reader_free(&conn->reader);
    close(conn->sock);
    free(conn);
}

extern "C" int gvc_request(gvc_conn *conn, const char *json, char **reply_out) {
    if (reply_out != NULL) *reply_out = NULL;
    if (conn == NULL || json == NULL || reply_out == NULL) return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_request: conn, json and reply must not be NULL");
    /* The object's members go after the "v" and "id" this adds. */
    const char *open = json;
    while (*open == ' ' || *open == '\t' || *open == '\n' || *open == '\r') open++;
    const char *close_at = json + strlen(json);
    while (close_at > open && (close_at[-1] == ' ' || close_at[-1] == '\t' || close_at[-1] == '\n' || close_at[-1] == '\r')) close_at--;
    if (*open != '{' || close_at - open < 2 || close_at[-1] != '}')
        return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_request: the request must be a JSON object such as {\"op\":\"list\"}");
    size_t inner = (size_t)(close_at - open - 2);
    char *fields = (char *)malloc(inner + 1);
    if (fields == NULL) return gvc_fail(GVC_ERR_HOST_MEMORY, "gvc_request: malloc failed");
    memcpy(fields, open + 1, inner);
    fields[inner] = '\0';
    gvc_reply reply;
    int rc = gvc_call(conn, "gvc_request", fields, -1, &reply);
    free(fields);
    if (reply.frame == NULL) return rc;
    char *copy = (char *)malloc(reply.frame->json_bytes + 1);
    if (copy == NULL) rc = gvc_fail(GVC_ERR_HOST_MEMORY, "gvc_request: malloc of a %u-byte reply failed", reply.frame->json_bytes);
    else memcpy(copy, reply.frame->json, reply.frame->json_bytes + 1);
    gvc_reply_free(&reply);
    *reply_out = copy;
    return rc;
}

/* `path` made absolute against this process's folder (its real path when it exists: the server sees the same file). */
static int absolute_path(const char *fn, const char *path, char *out, size_t cap) {
    char resolved[PATH_MAX];
    if (realpath(path, resolved) != NULL) {
        if (snprintf(out, cap, "%s", resolved) < (int)cap) return GVC_OK;
    } else if (path[0] == '/') {
        if (snprintf(out, cap, "%s", path) < (int)cap) return GVC_OK;
    } else {
        char here[PATH_MAX];
        if (getcwd(here, sizeof here) == NULL) return gvc_fail_os(errno, GVC_ERR_INVALID_ARGUMENT, "%s: the current folder", fn);
        if (snprintf(out, cap, "%s/%s", here, path) < (int)cap) return GVC_OK;
    }
    return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "%s: the path %s is longer than %zu bytes", fn, path, cap - 1);
}

extern "C" int gvc_load(gvc_conn *conn, const char *path, int device, int verify, char *id_out, size_t id_bytes) {
    if (id_out != NULL && id_bytes > 0) id_out[0] = '\0';
    if (conn == NULL || path == NULL || path[0] == '\0') return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_load: conn is NULL or the path is empty");
    char absolute[PATH_MAX];
    int rc = absolute_path("gvc_load", path, absolute, sizeof absolute);
    if (rc != GVC_OK) return rc;
    size_t cap = strlen(absolute) * 6 + 128; /* every byte escaped as \u00XX at worst, and the other members */
    char *fields = (char *)malloc(cap);
    if (fields == NULL) return gvc_fail(GVC_ERR_HOST_MEMORY, "gvc_load: malloc failed");
    int n = snprintf(fields, cap, "\"op\":\"load\",\"path\":\"");
    gvc_json_escape(absolute, fields + n, cap - (size_t)n);
    n += (int)strlen(fields + n);
    n += snprintf(fields + n, cap - (size_t)n, "\"");
    if (device >= 0) n += snprintf(fields + n, cap - (size_t)n, ",\"placement\":{\"device\":%d}", device);
    if (verify) snprintf(fields + n, cap - (size_t)n, ",\"verify\":true");
    gvc_reply reply;
    rc = gvc_call(conn, "gvc_load", fields, -1, &reply);
    free(fields);
    if (rc != GVC_OK) {
        gvc_reply_free(&reply);
        return rc;
    }
    gvc_span model, id;
    char model_id[80];
    size_t bytes = 0;
    const char *json = reply.frame->json;
    if (!gvc_json_member(json, reply.root, "model", &model) || !gvc_json_member(json, model, "id", &id) ||
        !gvc_json_string(json, id, model_id, sizeof model_id, &bytes) || bytes == 0)
        rc = gvc_fail(GVC_ERR_PROTOCOL, "gvc_load: the server's reply names no model id");
    else if (id_out != NULL && bytes >= id_bytes)
        rc = gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_load: the model %s is loaded, but its id needs %zu bytes and id_out has %zu", model_id, bytes + 1, id_bytes);
    else if (id_out != NULL)
        memcpy(id_out, model_id, bytes + 1);
    gvc_reply_free(&reply);
    return rc;
}
