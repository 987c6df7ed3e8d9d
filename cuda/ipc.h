/*
 * ipc.h — what the server's files share (ipc.cu: the handle, the wait and the
 * API; ipc_conn.cu: each connection; ipc_listen.cu: the socket file and its
 * lock). Not exported.
 */
#ifndef GGUF_VRAM_IPC_H
#define GGUF_VRAM_IPC_H

#include <atomic>
#include <mutex>
#include <sys/types.h>

#include "internal.h"
#include "wire.h"

/* One accepted connection. It is removed only by the waiting thread (or gv_ipc_free); other
 * threads only queue frames on it or mark it draining, under the server's lock. */
struct ipc_conn {
    uint32_t id;
    int sock;
    uint32_t pid, uid;
    gv_wire_reader reader;
    gv_wire_out *out_head, *out_tail; /* frames to send, oldest first */
    uint64_t queued;                  /* frames in that queue */
    bool draining;                    /* reads nothing more, takes no more frames: closed once its queue is sent */
    bool silent;                      /* a refused connection: its close is no event */
    int64_t drain_deadline_ms;        /* a draining connection whose peer stopped reading is closed then */
    char close_reason[160];           /* why it drains, for its GV_IPC_CLOSED */
    ipc_conn *next;
};

/* One event for gv_ipc_wait, its payload in the same block. */
struct ipc_event {
    uint32_t type, conn, pid, uid;
    uint64_t bytes;
    ipc_event *next;
    char payload[];
};

struct gv_ipc_server {
    std::mutex lock;
    int listener, lock_fd, wake_fd;
    char path[108];
    dev_t socket_dev; /* the socket file this server made: removed by gv_ipc_free only if it is still that one */
    ino_t socket_ino;
    uid_t uid;
    ipc_conn *conns;
    uint32_t next_id;
    ipc_event *events, *events_tail;
    bool stop_requested;
    bool stop_event_queued; /* a GV_IPC_STOPPED waits to be delivered */
    int64_t accept_paused_until_ms; /* after accept4 ran out of descriptors or memory */
    std::atomic<bool> waiting;
};

/* A connection that drains (disconnected, refused, after a bad frame) is closed when its peer reads nothing for this long. */
#define DRAIN_LIMIT_MS 2000
/* How long accepting pauses after accept4 ran out of descriptors or memory. */
#define ACCEPT_PAUSE_MS 100

/* ipc_conn.cu, with the server's lock held. */
void push_event(gv_ipc_server *server, uint32_t type, const ipc_conn *conn, const char *payload, uint64_t bytes);
ipc_conn *find_conn(gv_ipc_server *server, uint32_t id);
/* Accepts what the listener has (up to a round's worth). */
void accept_all(gv_ipc_server *server);
/* Reads what has come; every whole frame becomes a GV_IPC_MESSAGE. False when the connection was closed. */
bool conn_read(gv_ipc_server *server, ipc_conn *conn);
/* Sends what the socket takes; false when the connection failed and was closed. */
bool conn_flush(gv_ipc_server *server, ipc_conn *conn);
/* Stops reading and taking frames: closed once its queue is sent (or its peer stops reading). */
void conn_drain(ipc_conn *conn, const char *reason);
/* Removes a connection and reports it closed (unless refused). */
void conn_close(gv_ipc_server *server, ipc_conn *conn, const char *reason);
/* Closes a connection and frees it, its queue and its reader, without an event (gv_ipc_free). */
void conn_free(ipc_conn *conn);

/* ipc_listen.cu: binds `path` under its lock into server (listener, lock_fd, path, socket_dev/ino). */
int ipc_bind(gv_ipc_server *server, const char *path);
/* Closes the listener, removes the socket file if it is still this server's, releases the lock. */
void ipc_unbind(gv_ipc_server *server);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t ipc_now_ms(void);

#endif /* GGUF_VRAM_IPC_H */
