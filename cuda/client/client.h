/*
 * client.h — what libgguf_vram_client's files share: the last error, the
 * connection and its request/reply exchange, the attachment. Not exported
 * (the library is built with -fvisibility=hidden; gguf_vram_client.h is the API).
 */
#ifndef GGUF_VRAM_CLIENT_INTERNAL_H
#define GGUF_VRAM_CLIENT_INTERNAL_H

#include "../vmm.h"
#include "../wire.h"
#include "gguf_vram_client.h"
#include "json.h"

/* ─── errors (errors.cu) ────────────────────────────────────────────────────── */

/* Records one sentence as this thread's last error (its code ""), and returns status. */
int gvc_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with ": strerror(os_error)" added. */
int gvc_fail_os(int os_error, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A server's refusal: its code and message; returns GVC_ERR_SERVER. */
int gvc_fail_server(const char *code, const char *message, const char *hint);
/* A failure of wire.cu's as `fn`'s: GVC_ERR_DISCONNECTED, GVC_ERR_PROTOCOL, GVC_ERR_SOCKET or GVC_ERR_HOST_MEMORY. */
int gvc_fail_wire(const char *fn, int wire_result, const gv_wire_status *why);

/* Saves and restores the last error around clean-up that may fail on its own (the first failure is the one to tell). */
typedef struct gvc_saved_error {
    char message[1024];
    char code[64];
} gvc_saved_error;
void gvc_save_error(gvc_saved_error *saved);
void gvc_restore_error(const gvc_saved_error *saved);

/* ─── the connection (conn.cu) ──────────────────────────────────────────────── */

struct gvc_conn {
    int sock;
    gv_wire_reader reader;
    uint32_t next_id;
    int broken;                 /* once the connection failed, every call reports this status (GVC_OK while it works) */
    char broken_message[512];
    char socket_path[108];
    gvc_attachment *attachments; /* made through it and not yet detached: let go of the connection on gvc_close */
};

/* One reply: its frame (binary part and descriptors) and its checked JSON. */
typedef struct gvc_reply {
    gv_wire_frame *frame;
    gvc_span root;
} gvc_reply;

/* Sends {"v":1,"id":N,<fields>} (fields: members without braces, may be empty) and waits up to
 * timeout_ms (-1: no limit) for the reply with that id, skipping events and other ids.
 * GVC_OK with *reply filled (free it with gvc_reply_free) when it came and is "ok":true;
 * GVC_ERR_SERVER when "ok":false (*reply is still filled); else a failure and no reply. */
int gvc_call(gvc_conn *conn, const char *fn, const char *fields, int timeout_ms, gvc_reply *reply);
void gvc_reply_free(gvc_reply *reply);

/* `text` as the inside of a JSON string into out (cap bytes, NUL-terminated); false when it does not fit. */
bool gvc_json_escape(const char *text, char *out, size_t cap);

/* ─── attachments (attach.cu, table.cu) ─────────────────────────────────────── */

/* One device part of an attached model: its mapping in this process. */
typedef struct gvc_part {
    int device;
    uint32_t descriptor; /* index into the reply's descriptors */
    uint64_t alloc_bytes, bytes;
    gv_vmm_mapping mapping; /* ptr 0 until mapped */
} gvc_part;

struct gvc_attachment {
    gvc_conn *conn; /* NULL once the connection was closed */
    gvc_attachment *next_of_conn;
    char model_id[80];
    char attachment_id[80];
    char *model_path;   /* the model's file (a split set's first) */
    char **files;       /* every file of the model, by shard */
    int n_files;
    gvc_part *parts;
    int n_parts;
    gvc_tensor *tensors;
    int *tensor_parts;  /* each tensor's part */
    int n_tensors;
    char *names;        /* every tensor's name, NUL-terminated, one block */
};

/* Reads the tensor table (src/serve/protocol.ts) into the attachment's parts and tensors; every count,
 * size and offset is checked against the table and the parts before anything is kept. The tensors'
 * data pointers stay offsets until the parts are mapped. GVC_ERR_PROTOCOL when malformed. */
int gvc_read_table(gvc_attachment *attachment, const uint8_t *table, uint64_t bytes, uint32_t n_fds);

#endif /* GGUF_VRAM_CLIENT_INTERNAL_H */
