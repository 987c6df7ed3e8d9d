/*
 * ipc.cu — the server's side of the resident-model socket: connections, the
 * frames they send, the queues of frames to send them, and the events a
 * waiting thread hands to JavaScript (gguf_vram.h: gv_ipc_*).
 *
 * One thread waits (gv_ipc_wait, in a Bun Worker) and does all the socket work:
 * accepting, reading, writing, closing. Any other thread may queue frames,
 * disconnect, stop or count; it takes the lock, changes the queues, and wakes
 * the waiting thread through an eventfd. The lock is never held across poll().
 */
#include <errno.h>
#include <new>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"

/* Fairness: how many reads one connection gets per round, and how many accepts a round makes. */
#define READS_PER_ROUND 16
#define ACCEPTS_PER_ROUND 64
/* A connection that drains (disconnected, refused, after a bad frame) is closed when its peer reads nothing for this long. */
#define DRAIN_LIMIT_MS 2000
/* How long accepting pauses after accept4 ran out of descriptors or memory. */
#define ACCEPT_PAUSE_MS 100
#define EVENT_HEAD_BYTES 24

int64_t ipc_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gv_fail_wire(const char *fn, int wire_result, const gv_wire_status *why) {
    switch (wire_result) {
    case GV_WIRE_CLOSED: return gv_fail(GV_ERR_DISCONNECTED, "%s: %s", fn, why->message);
    case GV_WIRE_PROTOCOL: return gv_fail(GV_ERR_PROTOCOL, "%s: %s", fn, why->message);
    case GV_WIRE_MEMORY: return gv_fail(GV_ERR_HOST_MEMORY, "%s: %s", fn, why->message);
    default: return gv_fail_os(why->os_error, GV_ERR_SOCKET, "%s: %s", fn, why->message);
    }
}

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

static void push_event(gv_ipc_server *server, uint32_t type, const ipc_conn *conn, const char *payload, uint64_t bytes) {
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

static void conn_free(ipc_conn *conn) {
    for (gv_wire_out *frame = conn->out_head, *next; frame != NULL; frame = next) {
        next = frame->next;
        gv_wire_out_free(frame);
    }
    gv_wire_reader_free(&conn->reader);
    if (conn->sock >= 0) close(conn->sock);
    free(conn);
}

/* Removes a connection and reports it closed (unless refused): only the waiting thread, or gv_ipc_free. */
static void conn_close(gv_ipc_server *server, ipc_conn *conn, const char *reason) {
    for (ipc_conn **link = &server->conns; *link != NULL; link = &(*link)->next) {
        if (*link == conn) {
            *link = conn->next;
            break;
        }
    }
    if (!conn->silent) push_text(server, GV_IPC_CLOSED, conn, reason);
    conn_free(conn);
}

static void conn_drain(ipc_conn *conn, const char *reason) {
    if (conn->draining) return;
    conn->draining = true;
    conn->drain_deadline_ms = ipc_now_ms() + DRAIN_LIMIT_MS;
    snprintf(conn->close_reason, sizeof conn->close_reason, "%s", reason);
}

static ipc_conn *find_conn(gv_ipc_server *server, uint32_t id) {
    for (ipc_conn *conn = server->conns; conn != NULL; conn = conn->next)
        if (conn->id == id) return conn;
    return NULL;
}

/* Sends what the socket takes; false when the connection failed and was closed. */
static bool conn_flush(gv_ipc_server *server, ipc_conn *conn) {
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
static bool conn_read(gv_ipc_server *server, ipc_conn *conn) {
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

static void accept_all(gv_ipc_server *server) {
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

/* ─── one round of the wait ─────────────────────────────────────────────────── */

/* Closes connections that drained (or that drain past their limit) and the listener once stopped. */
static void tidy(gv_ipc_server *server) {
    int64_t now = ipc_now_ms();
    for (ipc_conn *conn = server->conns, *next; conn != NULL; conn = next) {
        next = conn->next;
        if (conn->draining && (conn->out_head == NULL || now >= conn->drain_deadline_ms)) conn_close(server, conn, conn->close_reason);
    }
    if (server->stop_requested && server->listener >= 0) {
        close(server->listener); /* new clients now get ECONNREFUSED; the file goes in gv_ipc_free */
        server->listener = -1;
    }
}

/* Polls the wake descriptor, the listener and every connection for up to timeout_ms, then does what is
 * ready: accepts, reads, sends, closes. Called with the lock held; releases it while polling. */
static void round_trip(gv_ipc_server *server, std::unique_lock<std::mutex> &held, int timeout_ms) {
    size_t n_conns = 0;
    for (ipc_conn *conn = server->conns; conn != NULL; conn = conn->next) n_conns++;
    struct pollfd *fds = (struct pollfd *)calloc(n_conns + 2, sizeof(struct pollfd));
    uint32_t *ids = (uint32_t *)calloc(n_conns + 1, sizeof(uint32_t));
    if (fds == NULL || ids == NULL) {
        free(fds);
        free(ids);
        held.unlock();
        poll(NULL, 0, timeout_ms < 0 || timeout_ms > 10 ? 10 : timeout_ms); /* out of memory: try again shortly */
        held.lock();
        return;
    }
    int64_t now = ipc_now_ms();
    size_t n = 0;
    fds[n++] = {server->wake_fd, POLLIN, 0};
    bool listening = server->listener >= 0 && now >= server->accept_paused_until_ms;
    if (listening) fds[n++] = {server->listener, POLLIN, 0};
    else if (server->listener >= 0) timeout_ms = timeout_ms < 0 || timeout_ms > ACCEPT_PAUSE_MS ? ACCEPT_PAUSE_MS : timeout_ms;
    size_t first_conn = n;
    for (ipc_conn *conn = server->conns; conn != NULL; conn = conn->next) {
        ids[n - first_conn] = conn->id;
        fds[n++] = {conn->sock, (short)((conn->draining ? 0 : POLLIN) | (conn->out_head ? POLLOUT : 0)), 0};
        if (conn->draining) {
            int64_t left = conn->drain_deadline_ms - now;
            int cap = left < 0 ? 0 : (int)left;
            if (timeout_ms < 0 || cap < timeout_ms) timeout_ms = cap;
        }
    }
    held.unlock();
    int ready = poll(fds, (nfds_t)n, timeout_ms);
    held.lock();

    if (ready > 0 && (fds[0].revents & POLLIN)) {
        uint64_t count;
        (void)!read(server->wake_fd, &count, sizeof count);
    }
    if (ready > 0 && listening && (fds[1].revents & POLLIN) && !server->stop_requested) accept_all(server);
    for (size_t i = first_conn; i < n; i++) {
        ipc_conn *conn = find_conn(server, ids[i - first_conn]);
        if (conn == NULL) continue;
        short revents = ready > 0 ? fds[i].revents : 0;
        if ((revents & (POLLIN | POLLHUP | POLLERR)) && !conn->draining && !conn_read(server, conn)) continue;
        if (conn->draining && (revents & (POLLHUP | POLLERR)) && !(revents & POLLOUT)) {
            conn_close(server, conn, conn->close_reason); /* the peer is gone: nothing queued can reach it */
            continue;
        }
        if (conn->out_head != NULL) conn_flush(server, conn);
    }
    /* Frames queued meanwhile go out now, not after another round. */
    for (ipc_conn *conn = server->conns, *next; conn != NULL; conn = next) {
        next = conn->next;
        if (conn->out_head != NULL) conn_flush(server, conn);
    }
    tidy(server);
    free(fds);
    free(ids);
}

/* Packs pending events into out; an event that can never fit is dropped with GV_ERR_PROTOCOL. */
static int deliver(gv_ipc_server *server, uint8_t *out, uint64_t cap, uint64_t *written) {
    uint64_t at = 0;
    while (server->events != NULL) {
        ipc_event *event = server->events;
        uint64_t size = EVENT_HEAD_BYTES + ((event->bytes + 7) & ~(uint64_t)7);
        if (size > cap - at) {
            if (at > 0) break;
            server->events = event->next;
            if (server->events == NULL) server->events_tail = NULL;
            free(event);
            return gv_fail(GV_ERR_PROTOCOL, "gv_ipc_wait: an event of %llu bytes does not fit the buffer of %llu bytes; it was dropped",
                           (unsigned long long)size, (unsigned long long)cap);
        }
        if (event->type == GV_IPC_STOPPED) server->stop_event_queued = false;
        uint8_t *head = out + at;
        memcpy(head, &event->type, 4);
        memcpy(head + 4, &event->conn, 4);
        memcpy(head + 8, &event->pid, 4);
        memcpy(head + 12, &event->uid, 4);
        memcpy(head + 16, &event->bytes, 8);
        memcpy(head + EVENT_HEAD_BYTES, event->payload, event->bytes);
        memset(head + EVENT_HEAD_BYTES + event->bytes, 0, size - EVENT_HEAD_BYTES - event->bytes);
        at += size;
        server->events = event->next;
        if (server->events == NULL) server->events_tail = NULL;
        free(event);
    }
    *written = at;
    return GV_OK;
}

/* ─── API ───────────────────────────────────────────────────────────────────── */

static void wake(gv_ipc_server *server) {
    uint64_t one = 1;
    (void)!write(server->wake_fd, &one, sizeof one);
}

extern "C" int gv_ipc_listen(const char *path, gv_ipc_server **out) {
    GV_REQUIRE(out != NULL, "gv_ipc_listen: out is NULL");
    *out = NULL;
    GV_REQUIRE(path != NULL && path[0] != '\0', "gv_ipc_listen: the socket path is empty");
    gv_ipc_server *server = new (std::nothrow) gv_ipc_server();
    if (server == NULL) return gv_fail(GV_ERR_HOST_MEMORY, "gv_ipc_listen: malloc of the server failed");
    server->listener = server->lock_fd = -1;
    server->uid = geteuid();
    server->next_id = 1;
    server->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = server->wake_fd < 0 ? gv_fail_os(errno, GV_ERR_SOCKET, "gv_ipc_listen: eventfd") : ipc_bind(server, path);
    if (rc != GV_OK) {
        if (server->wake_fd >= 0) close(server->wake_fd);
        delete server;
        return rc;
    }
    *out = server;
    return GV_OK;
}

extern "C" int gv_ipc_wait(gv_ipc_server *server, int timeout_ms, void *out, uint64_t cap, uint64_t *written) {
    GV_REQUIRE(written != NULL, "gv_ipc_wait: written is NULL");
    *written = 0;
    GV_REQUIRE(server != NULL && out != NULL, "gv_ipc_wait: server and out must not be NULL");
    GV_REQUIRE(cap >= EVENT_HEAD_BYTES, "gv_ipc_wait: a buffer of %llu bytes holds no event", (unsigned long long)cap);
    bool idle = false;
    GV_REQUIRE(server->waiting.compare_exchange_strong(idle, true), "gv_ipc_wait: another thread waits on this server");
    std::unique_lock<std::mutex> held(server->lock);
    int64_t deadline = timeout_ms < 0 ? -1 : ipc_now_ms() + timeout_ms;
    while (server->events == NULL) {
        if (server->stop_requested) {
            round_trip(server, held, 0); /* sends what it can; what is left, gv_ipc_free tries once more */
            if (!server->stop_event_queued) push_event(server, GV_IPC_STOPPED, NULL, NULL, 0);
            server->stop_event_queued = true;
            break;
        }
        int64_t left = deadline < 0 ? -1 : deadline - ipc_now_ms();
        round_trip(server, held, left < 0 && deadline >= 0 ? 0 : (int)left); /* at least one round, even for a timeout of 0 */
        if (server->events == NULL && !server->stop_requested && deadline >= 0 && ipc_now_ms() >= deadline) break;
    }
    int rc = deliver(server, (uint8_t *)out, cap, written);
    held.unlock();
    server->waiting.store(false);
    return rc;
}

extern "C" int gv_ipc_send(gv_ipc_server *server, uint32_t conn_id, const void *json, uint64_t json_bytes, const void *bin,
                           uint64_t bin_bytes, const int *fds, uint32_t n_fds) {
    GV_REQUIRE(fds != NULL || n_fds == 0, "gv_ipc_send: fds is NULL");
    if (server == NULL || (json == NULL && json_bytes > 0) || (bin == NULL && bin_bytes > 0)) {
        gv_wire_close_fds(fds, n_fds);
        return gv_fail(GV_ERR_INVALID_ARGUMENT, "gv_ipc_send: server, json or bin is NULL");
    }
    gv_wire_out *frame = NULL;
    gv_wire_status why;
    int made = gv_wire_out_make(json, json_bytes, bin, bin_bytes, fds, n_fds, GV_WIRE_MAX_REPLY_JSON, GV_WIRE_MAX_REPLY_BIN, &frame, &why);
    if (made == GV_WIRE_PROTOCOL) return gv_fail(GV_ERR_INVALID_ARGUMENT, "gv_ipc_send: %s (cuda/wire.h)", why.message);
    if (made != GV_WIRE_OK) return gv_fail_wire("gv_ipc_send", made, &why);
    std::unique_lock<std::mutex> held(server->lock);
    ipc_conn *conn = find_conn(server, conn_id);
    if (conn == NULL || conn->draining) {
        held.unlock();
        gv_wire_out_free(frame);
        return gv_fail(GV_ERR_DISCONNECTED, "gv_ipc_send: connection %u is closed", conn_id);
    }
    if (conn->out_tail) conn->out_tail->next = frame;
    else conn->out_head = frame;
    conn->out_tail = frame;
    conn->queued++;
    held.unlock();
    wake(server);
    return GV_OK;
}

extern "C" int gv_ipc_disconnect(gv_ipc_server *server, uint32_t conn_id) {
    GV_REQUIRE(server != NULL, "gv_ipc_disconnect: server is NULL");
    std::unique_lock<std::mutex> held(server->lock);
    ipc_conn *conn = find_conn(server, conn_id);
    if (conn == NULL || conn->draining) return gv_fail(GV_ERR_DISCONNECTED, "gv_ipc_disconnect: connection %u is closed", conn_id);
    conn_drain(conn, "disconnected by the server");
    held.unlock();
    wake(server);
    return GV_OK;
}

extern "C" int gv_ipc_stop(gv_ipc_server *server) {
    GV_REQUIRE(server != NULL, "gv_ipc_stop: server is NULL");
    {
        std::lock_guard<std::mutex> held(server->lock);
        server->stop_requested = true;
    }
    wake(server);
    return GV_OK;
}

extern "C" int gv_ipc_counts(gv_ipc_server *server, uint64_t *connections, uint64_t *queued) {
    GV_REQUIRE(server != NULL && connections != NULL && queued != NULL, "gv_ipc_counts: server, connections and queued must not be NULL");
    std::lock_guard<std::mutex> held(server->lock);
    *connections = *queued = 0;
    for (ipc_conn *conn = server->conns; conn != NULL; conn = conn->next) {
        *connections += 1;
        *queued += conn->queued;
    }
    return GV_OK;
}

extern "C" int gv_ipc_free(gv_ipc_server *server) {
    if (server == NULL) return GV_OK;
    GV_REQUIRE(!server->waiting.load(), "gv_ipc_free: a thread still waits on this server (gv_ipc_stop, then let gv_ipc_wait return)");
    {
        std::lock_guard<std::mutex> held(server->lock);
        for (ipc_conn *conn = server->conns, *next; conn != NULL; conn = next) {
            next = conn->next;
            conn_flush(server, conn); /* once, without waiting: the last replies of a stopping server */
        }
        while (server->conns != NULL) {
            ipc_conn *conn = server->conns;
            server->conns = conn->next;
            conn_free(conn);
        }
        while (server->events != NULL) {
            ipc_event *event = server->events;
            server->events = event->next;
            free(event);
        }
        server->events_tail = NULL;
        ipc_unbind(server);
        close(server->wake_fd);
    }
    delete server;
    return GV_OK;
}
