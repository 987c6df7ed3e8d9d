/*
 * wire.h — the frames of the resident-model protocol on a Unix stream socket,
 * shared by libgguf_vram (the server's side, and Bun's client side) and
 * libgguf_vram_client (C programs). The messages themselves are JSON; their
 * schema is src/serve/protocol.ts.
 *
 * A frame: a 16-byte header — u32 magic GV_WIRE_MAGIC, u32 JSON bytes, u32
 * binary bytes, u32 descriptor count, each little-endian — then the JSON text
 * (UTF-8, no terminating NUL), then the binary part. The descriptors travel as
 * one SCM_RIGHTS control message with the frame's first bytes; a reader takes
 * the descriptors of every recvmsg and gives a frame the first `count` of them.
 *
 * A client's frame is JSON only (no binary part, no descriptors), at most
 * GV_WIRE_MAX_REQUEST bytes of JSON; a server's frame at most GV_WIRE_MAX_REPLY_JSON
 * bytes of JSON, GV_WIRE_MAX_REPLY_BIN of binary and GV_WIRE_MAX_FDS descriptors.
 * Anything else is a protocol error: the reader closes the connection.
 */
#ifndef GGUF_VRAM_WIRE_H
#define GGUF_VRAM_WIRE_H

#include <stdint.h>

#define GV_WIRE_MAGIC 0x31525647u /* "GVR1" */
#define GV_WIRE_HEADER_BYTES 16u
#define GV_WIRE_MAX_REQUEST (64u << 10)
#define GV_WIRE_MAX_REPLY_JSON (16u << 20)
#define GV_WIRE_MAX_REPLY_BIN (64u << 20)
#define GV_WIRE_MAX_FDS 64u

typedef struct gv_wire_header {
    uint32_t magic;
    uint32_t json_bytes;
    uint32_t bin_bytes;
    uint32_t fds;
} gv_wire_header;

/* ─── reading and writing frames (wire.cu) ───────────────────────────────────────
 *
 * Both libraries' sockets are non-blocking: every call here does what the socket takes
 * now and says GV_WIRE_AGAIN when it would block, so the caller can poll(). Failures
 * are reported as a gv_wire_result and one sentence in a gv_wire_status; each library
 * turns them into its own status codes and last error. Nothing here prints. */

#include <stdbool.h>
#include <stddef.h>

enum gv_wire_result {
    GV_WIRE_OK = 0,       /* done: the frame was written whole, or bytes were read */
    GV_WIRE_AGAIN = 1,    /* the socket would block: call again when poll() says so */
    GV_WIRE_CLOSED = 2,   /* the other side closed the connection (end of stream, EPIPE, ECONNRESET) */
    GV_WIRE_PROTOCOL = 3, /* a malformed or oversized frame: the connection cannot go on */
    GV_WIRE_SOCKET = 4,   /* another socket failure: errno in os_error */
    GV_WIRE_MEMORY = 5,   /* malloc failed */
};

/* One sentence; for GV_WIRE_SOCKET it names the call that failed, and the caller adds strerror(os_error). */
typedef struct gv_wire_status {
    int os_error;
    char message[256];
} gv_wire_status;

/* One frame to send, in one buffer (header, JSON, binary part), with the descriptors that
 * go with its first byte. The frame owns the descriptors: they are closed once sent (the
 * kernel holds its own references from then on) or when the frame is freed unsent. */
typedef struct gv_wire_out {
    uint8_t *bytes;
    uint64_t size;
    uint64_t sent;
    int *fds;
    uint32_t n_fds;
    struct gv_wire_out *next; /* for the caller's queues */
} gv_wire_out;

/* A frame of json, bin and fds (which pass to the frame, even when this fails); sizes are
 * checked against the limits of `max_json`, `max_bin` and GV_WIRE_MAX_FDS. */
int gv_wire_out_make(const void *json, uint64_t json_bytes, const void *bin, uint64_t bin_bytes, const int *fds,
                     uint32_t n_fds, uint32_t max_json, uint32_t max_bin, gv_wire_out **out, gv_wire_status *why);
/* Closes the descriptors not yet sent and frees the frame (NULL: nothing). */
void gv_wire_out_free(gv_wire_out *frame);
/* Writes what the socket takes now (sendmsg, MSG_NOSIGNAL, looping on EINTR and partial
 * writes): GV_WIRE_OK once the whole frame is sent, GV_WIRE_AGAIN when the socket is full. */
int gv_wire_out_write(int sock, gv_wire_out *frame, gv_wire_status *why);

/* What a reader accepts: a server reads requests (JSON only), a client replies. */
typedef struct gv_wire_limits {
    uint32_t max_json, max_bin, max_fds;
    const char *what; /* "request" or "reply", for messages */
} gv_wire_limits;

static inline gv_wire_limits gv_wire_request_limits(void) {
    gv_wire_limits limits = {GV_WIRE_MAX_REQUEST, 0, 0, "request"};
    return limits;
}

static inline gv_wire_limits gv_wire_reply_limits(void) {
    gv_wire_limits limits = {GV_WIRE_MAX_REPLY_JSON, GV_WIRE_MAX_REPLY_BIN, GV_WIRE_MAX_FDS, "reply"};
    return limits;
}

/* One connection's incoming bytes and descriptors, not yet given to a frame. */
typedef struct gv_wire_reader {
    gv_wire_limits limits;
    uint8_t *buf;
    uint64_t start, end, cap; /* the unread bytes are buf[start, end) */
    int *fds;                 /* received, not yet given to a frame, in arrival order */
    uint32_t n_fds;
} gv_wire_reader;

/* A whole frame, taken from a reader: json is NUL-terminated (json_bytes excludes the NUL);
 * the descriptors are the taker's. One allocation: gv_wire_frame_free. */
typedef struct gv_wire_frame {
    char *json;
    uint32_t json_bytes;
    uint8_t *bin;
    uint32_t bin_bytes;
    int *fds;
    uint32_t n_fds;
} gv_wire_frame;

void gv_wire_reader_init(gv_wire_reader *reader, gv_wire_limits limits);
/* Frees the buffer and closes every descriptor not given to a frame. */
void gv_wire_reader_free(gv_wire_reader *reader);
/* One recvmsg (MSG_CMSG_CLOEXEC, every SCM_RIGHTS descriptor kept): GV_WIRE_OK when bytes came,
 * or when a whole frame is already buffered (take it first); the head frame's header is checked
 * against the limits before the buffer grows for it. */
int gv_wire_read(int sock, gv_wire_reader *reader, gv_wire_status *why);
/* Takes the frame at the head of the buffer into *out when it is whole (*ready = 1); else *ready = 0. */
int gv_wire_next(gv_wire_reader *reader, gv_wire_frame **out, int *ready, gv_wire_status *why);
/* Bytes buffered that are not a whole frame yet (a stream that ends here was cut mid-frame). */
uint64_t gv_wire_pending(const gv_wire_reader *reader);
/* Closes the frame's descriptors that the caller did not take (set to -1 those it took) and frees it. */
void gv_wire_frame_free(gv_wire_frame *frame);

/* A connected, non-blocking Unix stream socket to `path` in *sock, or GV_WIRE_SOCKET with errno in
 * os_error (ENAMETOOLONG for a path a socket address cannot hold; ENOENT or ECONNREFUSED when nothing
 * listens there) and the call that failed in the message. */
int gv_wire_connect(const char *path, int *sock, gv_wire_status *why);

/* Closes each descriptor (>= 0) of fds[0, n). */
void gv_wire_close_fds(const int *fds, uint32_t n);

#endif /* GGUF_VRAM_WIRE_H */
