/*
 * ipc_conn.cu — the server's connections, one at a time: accepting (another
 * user's is answered and closed), reading frames into events, sending what is
 * queued, draining and closing. Called by the waiting thread with the server's
 * lock held (ipc.cu), and by gv_ipc_free.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"

/* Fairness: how many reads one connection gets per round, and how many accepts a round makes. */
#define READS_PER_ROUND 16
#define ACCEPTS_PER_ROUND 64

/* ─── failure frames ────────────────────────────────────────────────────────── */

/* `text` as the inside of a JSON string, cut to fit `cap` (always NUL-terminated). */
static void json_escape(const char *text, char *out, size_t cap) {
    size_t at = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0' && at + 7 < cap; c++) {
        if (*c == '"' || *c == '\\') out[at++] = '\\', out[at++] = (char)*c;
        else if (*c < 0x20) at += (size_t)snprintf(out + at, cap - at, "\\u%04x", *c);
        else out[at++] = (char)*c;
    }
    out[at] = '\0';
}

/* Queues a failure reply (id null) to a connection that is then closed. */
static void queue_failure(ipc_conn *conn, const char *code, const char *message, const char *hint) {
    char escaped_message[512], escaped_hint[512], json[1200];
    json_escape(message, escaped_message, sizeof escaped_message);
    json_escape(hint, escaped_hint, sizeof escaped_hint);
    int n = snprintf(json, sizeof json, "{\"v\":1,\"id\":null,\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"hint\":\"%s\"}}",
                     code, escaped_message, escaped_hint);
    gv_wire_out *frame = NULL;
    gv_wire_status why;
    if (gv_wire_out_make(json, (uint64_t)n, NULL, 0, NULL, 0, GV_WIRE_MAX_REPLY_JSON, 0, &frame, &why) != GV_WIRE_OK) return;
    if (conn->out_tail) conn->out_tail->next = frame;
    else conn->out_head = frame;
    conn->out_tail = frame;
    conn->queued++;
}

/* ─── events ────────────────────────────────────────────────────────────────── */

void push_event(gv_ipc_server *server, uint32_t type, const ipc_conn *conn, const char *payload, uint64_t bytes) {
    ipc_event *event = (ipc_event *)malloc(sizeof(ipc_event) + bytes);
    if (event == NULL) return; /* the host is out of memory: the JS side sees the connection's later events */
    event->type = type;
    event->conn = conn ? conn->id : 0;
    event->pid = conn ? conn->pid : 0;
    event->uid = conn ? conn->uid : 0;
    event->bytes = bytes;
    event->next = NULL;
    if (bytes) memcpy(event->payload, payload, bytes);
    if (server->events_tail) server->events_tail->next = event;
    else server->events = event;
    server->events_tail = event;
}

static void push_text(gv_ipc_server *server, uint32_t type, const ipc_conn *conn, const char *text) {
    push_event(server, type, conn, text, strlen(text));
}

/* ─── connections ───────────────────────────────────────────────────────────── */

void conn_free(ipc_conn *conn) {
    for (gv_wire_out *frame = conn->out_head, *next; frame != NULL; frame = next) {
        next = frame->next;
        gv_wire_out_free(frame);
    }
    gv_wire_reader_free(&conn->reader);
    if (conn->sock >= 0) close(conn->sock);
    free(conn);
}

/* Removes a connection and reports it closed (unless refused): only the waiting thread, or gv_ipc_free. */
void conn_close(gv_ipc_server *server, ipc_conn *conn, const char *reason) {
    for (ipc_conn **link = &server->conns; *link != NULL; link = &(*link)->next) {
        if (*link == conn) {
            *link = conn->next;
            break;
        }
    }
    if (!conn->silent) push_text(server, GV_IPC_CLOSED, conn, reason);
    conn_free(conn);
}

void conn_drain(ipc_conn *conn, const char *reason) {
    if (conn->draining) return;
    conn->draining = true;
    conn->drain_deadline_ms = ipc_now_ms() + DRAIN_LIMIT_MS;
    snprintf(conn->close_reason, sizeof conn->close_reason, "%s", reason);
}

ipc_conn *find_conn(gv_ipc_server *server, uint32_t id) {
    for (ipc_conn *conn = server->conns; conn != NULL; conn = conn->next)
        if (conn->id == id) return conn;
    return NULL;
}

/* Sends what the socket takes; false when the connection failed and was closed. */
bool conn_flush(gv_ipc_server *server, ipc_conn *conn) {
    while (conn->out_head != NULL) {
        gv_wire_status why;
        uint64_t sent_before = conn->out_head->sent;
        int rc = gv_wire_out_write(conn->sock, conn->out_head, &why);
        if (conn->draining && conn->out_head->sent > sent_before) conn->drain_deadline_ms = ipc_now_ms() + DRAIN_LIMIT_MS; /* it reads: let it finish */
        if (rc == GV_WIRE_AGAIN) return true;
        if (rc != GV_WIRE_OK) {
            char reason[320];
            snprintf(reason, sizeof reason, rc == GV_WIRE_SOCKET ? "sending failed: %s: %s" : "%s", why.message, strerror(why.os_error));
            conn_close(server, conn, conn->draining ? conn->close_reason : reason);
            return false;
        }
        gv_wire_out *sent = conn->out_head;
        conn->out_head = sent->next;
        if (conn->out_head == NULL) conn->out_tail = NULL;
        conn->queued--;
        gv_wire_out_free(sent);
    }
    return true;
}

/* Reads what has come; every whole frame becomes a GV_IPC_MESSAGE. False when the connection was closed. */
bool conn_read(gv_ipc_server *server, ipc_conn *conn) {
    for (int reads = 0; reads < READS_PER_ROUND && !conn->draining; reads++) {
        gv_wire_status why;
        int rc = gv_wire_read(conn->sock, &conn->reader, &why);
        for (int ready = 1; rc == GV_WIRE_OK && ready;) {
            gv_wire_frame *frame = NULL;
            rc = gv_wire_next(&conn->reader, &frame, &ready, &why);
            if (ready) push_event(server, GV_IPC_MESSAGE, conn, frame->json, frame->json_bytes);
            gv_wire_frame_free(frame);
        }
        if (rc == GV_WIRE_AGAIN) return true;
        if (rc == GV_WIRE_PROTOCOL) {
            push_text(server, GV_IPC_PROTOCOL_ERROR, conn, why.message);
            queue_failure(conn, "BAD_REQUEST", why.message, "send requests of at most 64 KiB of JSON, with no binary part and no descriptors (cuda/wire.h)");
            conn_drain(conn, "closed after a bad frame");
            return true;
        }
        if (rc == GV_WIRE_CLOSED) {
            conn_close(server, conn, gv_wire_pending(&conn->reader) ? "the client closed the connection in the middle of a frame" : "the client closed the connection");
            return false;
        }
        if (rc != GV_WIRE_OK) {
            char reason[320];
            snprintf(reason, sizeof reason, "reading failed: %s: %s", why.message, strerror(why.os_error));
            conn_close(server, conn, reason);
            return false;
        }
    }
    return true;
}

/* A new connection: this user's is reported; another user's is answered with PEER_REFUSED and closed. */
static void conn_accept(gv_ipc_server *server, int sock) {
    struct ucred peer = {};
    socklen_t len = sizeof peer;
    ipc_conn *conn = (ipc_conn *)calloc(1, sizeof *conn);
    if (conn == NULL || getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
        free(conn);
        close(sock);
        return;
    }
    conn->id = server->next_id++;
    if (server->next_id == 0) server->next_id = 1; /* after 2^32 - 1 connections; ids of open ones are long gone by then */
    conn->sock = sock;
    conn->pid = (uint32_t)peer.pid;
    conn->uid = (uint32_t)peer.uid;
    gv_wire_reader_init(&conn->reader, gv_wire_request_limits());
    conn->next = server->conns;
    server->conns = conn;
    if (peer.uid == server->uid) {
        push_event(server, GV_IPC_CONNECTED, conn, NULL, 0);
        return;
    }
    char message[256];
    snprintf(message, sizeof message, "this server runs as uid %u and serves only that user; the connection of uid %u (pid %u) is refused",
             (unsigned)server->uid, conn->uid, conn->pid);
    queue_failure(conn, "PEER_REFUSED", message, "connect as the user who started the server, or start a server of your own (GGUF_VRAM_SOCKET names its socket)");
    push_text(server, GV_IPC_REFUSED, conn, message);
    conn->silent = true;
    conn_drain(conn, "refused");
}

void accept_all(gv_ipc_server *server) {
    for (int i = 0; i < ACCEPTS_PER_ROUND; i++) {
        int sock = accept4(server->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (sock >= 0) {
            conn_accept(server, sock);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) server->accept_paused_until_ms = ipc_now_ms() + ACCEPT_PAUSE_MS;
        return;
    }
}
