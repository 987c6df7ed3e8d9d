/*
 * ipc.cu — the server's side of the resident-model socket (gguf_vram.h:
 * gv_ipc_*): the wait that polls every socket and hands events to JavaScript,
 * and the calls that queue frames for it. Each connection's own work is
 * ipc_conn.cu's; the socket file and its lock, ipc_listen.cu's.
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
    bool alone = conn->out_head == NULL;
    if (conn->out_tail) conn->out_tail->next = frame;
    else conn->out_head = frame;
    conn->out_tail = frame;
    conn->queued++;
    /* The usual reply (alone in the queue, and the socket has room) goes out from this thread at once,
     * without a hop to the waiting thread; anything else is that thread's (a failure included: it
     * closes the connection and reports it). */
    bool sent = false;
    if (alone) {
        gv_wire_status why;
        if (gv_wire_out_write(conn->sock, frame, &why) == GV_WIRE_OK) {
            conn->out_head = conn->out_tail = NULL;
            conn->queued--;
            gv_wire_out_free(frame);
            sent = true;
        }
    }
    held.unlock();
    if (!sent) wake(server);
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
