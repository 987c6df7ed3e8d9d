/*
 * wire.cu — frames on a non-blocking Unix stream socket (the format is wire.h's),
 * shared by libgguf_vram and libgguf_vram_client.
 *
 * Every byte read comes from the other process and is checked before it is
 * trusted: a header is checked against the reader's limits before the buffer
 * grows for its frame, so a hostile peer can make a reader hold at most one
 * frame of the allowed size plus one read's worth of bytes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wire.h"

/* What one recvmsg asks for beyond the frame being read. */
#define READ_CHUNK (64u << 10)

static int fail(gv_wire_status *why, int result, int os_error, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(gv_wire_status *why, int result, int os_error, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(why->message, sizeof why->message, fmt, args);
    va_end(args);
    why->os_error = os_error;
    return result;
}

void gv_wire_close_fds(const int *fds, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

static void put_u32(uint8_t *at, uint32_t value) {
    for (int i = 0; i < 4; i++) at[i] = (uint8_t)(value >> (8 * i));
}

static uint32_t get_u32(const uint8_t *at) {
    return (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 | (uint32_t)at[3] << 24;
}

/* ─── writing ───────────────────────────────────────────────────────────────── */

int gv_wire_out_make(const void *json, uint64_t json_bytes, const void *bin, uint64_t bin_bytes, const int *fds,
                     uint32_t n_fds, uint32_t max_json, uint32_t max_bin, gv_wire_out **out, gv_wire_status *why) {
    *out = NULL;
    if (n_fds > GV_WIRE_MAX_FDS) {
        gv_wire_close_fds(fds, n_fds);
        return fail(why, GV_WIRE_PROTOCOL, 0, "a frame with %u descriptors, over the limit of %u", n_fds, GV_WIRE_MAX_FDS);
    }
    for (uint32_t i = 0; i < n_fds; i++) {
        if (fds[i] < 0) {
            gv_wire_close_fds(fds, n_fds);
            return fail(why, GV_WIRE_PROTOCOL, 0, "descriptor %u of the frame is %d, not an open descriptor", i, fds[i]);
        }
    }
    if (json_bytes > max_json || bin_bytes > max_bin) {
        gv_wire_close_fds(fds, n_fds);
        return fail(why, GV_WIRE_PROTOCOL, 0, "a frame of %llu bytes of JSON and %llu of binary, over the limits of %u and %u",
                    (unsigned long long)json_bytes, (unsigned long long)bin_bytes, max_json, max_bin);
    }
    gv_wire_out *frame = (gv_wire_out *)calloc(1, sizeof *frame);
    uint64_t size = GV_WIRE_HEADER_BYTES + json_bytes + bin_bytes;
    uint8_t *bytes = frame ? (uint8_t *)malloc(size) : NULL;
    int *owned = frame && bytes && n_fds ? (int *)malloc(n_fds * sizeof(int)) : NULL;
    if (frame == NULL || bytes == NULL || (n_fds > 0 && owned == NULL)) {
        free(frame);
        free(bytes);
        free(owned);
        gv_wire_close_fds(fds, n_fds);
        return fail(why, GV_WIRE_MEMORY, ENOMEM, "malloc of a %llu-byte frame failed", (unsigned long long)size);
    }
    put_u32(bytes, GV_WIRE_MAGIC);
    put_u32(bytes + 4, (uint32_t)json_bytes);
    put_u32(bytes + 8, (uint32_t)bin_bytes);
    put_u32(bytes + 12, n_fds);
    if (json_bytes) memcpy(bytes + GV_WIRE_HEADER_BYTES, json, json_bytes);
    if (bin_bytes) memcpy(bytes + GV_WIRE_HEADER_BYTES + json_bytes, bin, bin_bytes);
    if (n_fds) memcpy(owned, fds, n_fds * sizeof(int));
    frame->bytes = bytes;
    frame->size = size;
    frame->fds = owned;
    frame->n_fds = n_fds;
    *out = frame;
    return GV_WIRE_OK;
}

void gv_wire_out_free(gv_wire_out *frame) {
    if (frame == NULL) return;
    gv_wire_close_fds(frame->fds, frame->n_fds);
    free(frame->fds);
    free(frame->bytes);
    free(frame);
}

int gv_wire_out_write(int sock, gv_wire_out *frame, gv_wire_status *why) {
    while (frame->sent < frame->size) {
        struct iovec iov = {frame->bytes + frame->sent, (size_t)(frame->size - frame->sent)};
        struct msghdr msg = {};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        union {
            struct cmsghdr align;
            char bytes[CMSG_SPACE(sizeof(int) * GV_WIRE_MAX_FDS)];
        } control;
        if (frame->n_fds > 0) { /* the descriptors ride with the first byte sent */
            memset(&control, 0, sizeof control);
            msg.msg_control = control.bytes;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * frame->n_fds);
            struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
            cmsg->cmsg_level = SOL_SOCKET;
            cmsg->cmsg_type = SCM_RIGHTS;
            cmsg->cmsg_len = CMSG_LEN(sizeof(int) * frame->n_fds);
            memcpy(CMSG_DATA(cmsg), frame->fds, sizeof(int) * frame->n_fds);
        }
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return GV_WIRE_AGAIN;
            if (errno == EPIPE || errno == ECONNRESET) return fail(why, GV_WIRE_CLOSED, errno, "the other side closed the connection");
            return fail(why, GV_WIRE_SOCKET, errno, "sendmsg of a %llu-byte frame", (unsigned long long)frame->size);
        }
        if (frame->n_fds > 0) { /* sent: the kernel holds its own references now */
            gv_wire_close_fds(frame->fds, frame->n_fds);
            free(frame->fds);
            frame->fds = NULL;
            frame->n_fds = 0;
        }
        frame->sent += (uint64_t)n;
    }
    return GV_WIRE_OK;
}

/* ─── reading ───────────────────────────────────────────────────────────────── */

void gv_wire_reader_init(gv_wire_reader *reader, gv_wire_limits limits) {
    memset(reader, 0, sizeof *reader);
    reader->limits = limits;
}

void gv_wire_reader_free(gv_wire_reader *reader) {
    gv_wire_close_fds(reader->fds, reader->n_fds);
    free(reader->fds);
    free(reader->buf);
    gv_wire_reader_init(reader, reader->limits);
}

uint64_t gv_wire_pending(const gv_wire_reader *reader) { return reader->end - reader->start; }

/* The size of the frame at the head (header included), once its header is there and passes the
 * limits; 0 while fewer than 16 bytes are buffered. */
static int head_frame_bytes(const gv_wire_reader *reader, uint64_t *total, gv_wire_status *why) {
    *total = 0;
    if (reader->end - reader->start < GV_WIRE_HEADER_BYTES) return GV_WIRE_OK;
    const uint8_t *head = reader->buf + reader->start;
    const gv_wire_limits *limits = &reader->limits;
    uint32_t magic = get_u32(head), json = get_u32(head + 4), bin = get_u32(head + 8), fds = get_u32(head + 12);
    if (magic != GV_WIRE_MAGIC)
        return fail(why, GV_WIRE_PROTOCOL, 0, "a frame starts with 0x%08x, not the magic 0x%08x (\"GVR1\")", magic, GV_WIRE_MAGIC);
    if (json > limits->max_json)
        return fail(why, GV_WIRE_PROTOCOL, 0, "a %s of %u bytes of JSON, over the limit of %u", limits->what, json, limits->max_json);
    if (bin > 0 && limits->max_bin == 0)
        return fail(why, GV_WIRE_PROTOCOL, 0, "a %s with a binary part of %u bytes (a client's frame is JSON only)", limits->what, bin);
    if (bin > limits->max_bin)
        return fail(why, GV_WIRE_PROTOCOL, 0, "a %s with a binary part of %u bytes, over the limit of %u", limits->what, bin, limits->max_bin);
    if (fds > 0 && limits->max_fds == 0)
        return fail(why, GV_WIRE_PROTOCOL, 0, "a %s with %u descriptors (a client's frame is JSON only)", limits->what, fds);
    if (fds > limits->max_fds)
        return fail(why, GV_WIRE_PROTOCOL, 0, "a %s with %u descriptors, over the limit of %u", limits->what, fds, limits->max_fds);
    *total = (uint64_t)GV_WIRE_HEADER_BYTES + json + bin;
    return GV_WIRE_OK;
}

/* Keeps the descriptors of one recvmsg; a reader that takes none closes them and fails. */
static int keep_descriptors(gv_wire_reader *reader, struct msghdr *msg, gv_wire_status *why) {
    int received[256];
    uint32_t n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count && n < 256; i++) memcpy(&received[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    int rc = GV_WIRE_OK;
    if (msg->msg_flags & MSG_CTRUNC)
        rc = fail(why, GV_WIRE_PROTOCOL, 0, "more descriptors came with one read than a %s may carry (%u)", reader->limits.what,
                  reader->limits.max_fds);
    else if (n > 0 && reader->limits.max_fds == 0)
        rc = fail(why, GV_WIRE_PROTOCOL, 0, "a %s came with %u descriptors (a client's frame is JSON only)", reader->limits.what, n);
    else if (reader->n_fds + n > 2 * reader->limits.max_fds)
        rc = fail(why, GV_WIRE_PROTOCOL, 0, "%u descriptors arrived that no frame announced", reader->n_fds + n);
    if (rc == GV_WIRE_OK && n > 0) {
        int *grown = (int *)realloc(reader->fds, (reader->n_fds + n) * sizeof(int));
        if (grown == NULL) rc = fail(why, GV_WIRE_MEMORY, ENOMEM, "malloc for %u received descriptors failed", reader->n_fds + n);
        else {
            memcpy(grown + reader->n_fds, received, n * sizeof(int));
            reader->fds = grown;
            reader->n_fds += n;
            return GV_WIRE_OK;
        }
    }
    gv_wire_close_fds(received, n);
    return rc;
}

/* Room for `want` bytes from buf[0]: the unread bytes moved to the front, the buffer grown. */
static int make_room(gv_wire_reader *reader, uint64_t want, gv_wire_status *why) {
    if (reader->start > 0) {
        memmove(reader->buf, reader->buf + reader->start, reader->end - reader->start);
        reader->end -= reader->start;
        reader->start = 0;
    }
    if (reader->cap >= want) return GV_WIRE_OK;
    uint8_t *grown = (uint8_t *)realloc(reader->buf, want);
    if (grown == NULL) return fail(why, GV_WIRE_MEMORY, ENOMEM, "malloc of a %llu-byte read buffer failed", (unsigned long long)want);
    reader->buf = grown;
    reader->cap = want;
    return GV_WIRE_OK;
}

int gv_wire_read(int sock, gv_wire_reader *reader, gv_wire_status *why) {
    uint64_t total = 0;
    int rc = head_frame_bytes(reader, &total, why);
    if (rc != GV_WIRE_OK) return rc;
    uint64_t buffered = reader->end - reader->start;
    if (total > 0 && buffered >= total) return GV_WIRE_OK; /* a whole frame waits to be taken */
    rc = make_room(reader, (total > 0 ? total : GV_WIRE_HEADER_BYTES) + READ_CHUNK, why);
    if (rc != GV_WIRE_OK) return rc;

    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * GV_WIRE_MAX_FDS)];
    } control;
    for (;;) {
        struct iovec iov = {reader->buf + reader->end, (size_t)(reader->cap - reader->end)};
        struct msghdr msg = {};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return GV_WIRE_AGAIN;
            if (errno == ECONNRESET) return fail(why, GV_WIRE_CLOSED, errno, "the other side closed the connection");
            return fail(why, GV_WIRE_SOCKET, errno, "recvmsg");
        }
        rc = msg.msg_controllen > 0 || (msg.msg_flags & MSG_CTRUNC) ? keep_descriptors(reader, &msg, why) : GV_WIRE_OK;
        if (rc != GV_WIRE_OK) return rc;
        if (n == 0) return fail(why, GV_WIRE_CLOSED, 0, "the other side closed the connection");
        reader->end += (uint64_t)n;
        return GV_WIRE_OK;
    }
}

int gv_wire_next(gv_wire_reader *reader, gv_wire_frame **out, int *ready, gv_wire_status *why) {
    *out = NULL;
    *ready = 0;
    uint64_t total = 0;
    int rc = head_frame_bytes(reader, &total, why);
    if (rc != GV_WIRE_OK || total == 0 || reader->end - reader->start < total) return rc;

    const uint8_t *head = reader->buf + reader->start;
    uint32_t json = get_u32(head + 4), bin = get_u32(head + 8), fds = get_u32(head + 12);
    if (fds > reader->n_fds)
        return fail(why, GV_WIRE_PROTOCOL, 0, "a %s announces %u descriptors but %u came with it", reader->limits.what, fds, reader->n_fds);
    /* One block: the frame, the fds, the JSON and its NUL, then the binary part 8-aligned. */
    uint64_t fds_at = (sizeof(gv_wire_frame) + 7) & ~(uint64_t)7;
    uint64_t json_at = fds_at + (uint64_t)fds * sizeof(int);
    uint64_t bin_at = (json_at + json + 1 + 7) & ~(uint64_t)7;
    gv_wire_frame *frame = (gv_wire_frame *)malloc(bin_at + bin);
    if (frame == NULL) return fail(why, GV_WIRE_MEMORY, ENOMEM, "malloc of a %llu-byte frame failed", (unsigned long long)total);
    frame->fds = (int *)((uint8_t *)frame + fds_at);
    frame->n_fds = fds;
    frame->json = (char *)frame + json_at;
    frame->json_bytes = json;
    frame->bin = (uint8_t *)frame + bin_at;
    frame->bin_bytes = bin;
    memcpy(frame->json, head + GV_WIRE_HEADER_BYTES, json);
    frame->json[json] = '\0';
    memcpy(frame->bin, head + GV_WIRE_HEADER_BYTES + json, bin);
    memcpy(frame->fds, reader->fds, fds * sizeof(int));
    memmove(reader->fds, reader->fds + fds, (reader->n_fds - fds) * sizeof(int));
    reader->n_fds -= fds;
    reader->start += total;
    if (reader->start == reader->end) { /* nothing buffered: give a large buffer back */
        reader->start = reader->end = 0;
        if (reader->cap > 2 * READ_CHUNK) {
            free(reader->buf);
            reader->buf = NULL;
            reader->cap = 0;
        }
    }
    *out = frame;
    *ready = 1;
    return GV_WIRE_OK;
}

void gv_wire_frame_free(gv_wire_frame *frame) {
    if (frame == NULL) return;
    gv_wire_close_fds(frame->fds, frame->n_fds);
    free(frame);
}

int gv_wire_connect(const char *path, int *sock, gv_wire_status *why) {
    *sock = -1;
    struct sockaddr_un addr = {};
    size_t length = strlen(path);
    if (length >= sizeof addr.sun_path)
        return fail(why, GV_WIRE_SOCKET, ENAMETOOLONG, "the socket path %s is %zu bytes; a Unix socket path holds at most %zu", path, length,
                    sizeof addr.sun_path - 1);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, length);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return fail(why, GV_WIRE_SOCKET, errno, "socket()");
    int rc = connect(s, (struct sockaddr *)&addr, sizeof addr);
    while (rc != 0 && errno == EINTR) rc = connect(s, (struct sockaddr *)&addr, sizeof addr);
    if (rc != 0) {
        int err = errno;
        close(s);
        return fail(why, GV_WIRE_SOCKET, err, "connecting to %s", path);
    }
    int flags = fcntl(s, F_GETFL);
    if (flags < 0 || fcntl(s, F_SETFL, flags | O_NONBLOCK) != 0) {
        int err = errno;
        close(s);
        return fail(why, GV_WIRE_SOCKET, err, "making the connection to %s non-blocking", path);
    }
    *sock = s;
    return GV_WIRE_OK;
}
