/*
 * gguf_vram_client.h — attach to GGUF models that `gguf-vram serve` keeps in
 * GPU memory, from any program: C, C++, Rust (bindgen), Python (ctypes). Link
 * libgguf_vram_client.so (built by gguf-vram's build.ts into its cache, beside
 * this header's copy); it needs the CUDA driver at run time only, not at link
 * time, and no Bun.
 *
 *   gvc_conn *conn;
 *   gvc_attachment *model;
 *   if (gvc_connect(NULL, &conn) != GVC_OK) { fprintf(stderr, "%s\n", gvc_last_error()); return 1; }
 *   if (gvc_attach(conn, "/models/qwen2.5-7b-instruct-q4_k_m.gguf", &model) != GVC_OK) { … }
 *   const gvc_tensor *w = gvc_find(model, "blk.0.attn_q.weight", -1);
 *   my_kernel<<<…>>>((const block_q4_K *)w->data, …);   // w->data: a device pointer on w->device
 *   gvc_detach(model);
 *   gvc_close(conn);
 *
 * Attaching maps the model's memory into this process (CUDA virtual memory
 * handed over as file descriptors); the pointers stay valid until gvc_detach,
 * even if the server exits or is killed meanwhile. The server keeps a model
 * that any connection holds; closing the connection (or the process ending)
 * lets go of every attachment made through it, and the memory itself goes once
 * every process that mapped it has let go.
 *
 * Rules: every function returns a gvc_status (GVC_OK = 0) unless it is a
 * getter; on failure gvc_last_error() has one sentence (thread-local) and, for
 * a server's refusal, gvc_last_error_code() its code ("NO_SUCH_MODEL", …). A
 * connection is used by one thread at a time. Nothing here exits, aborts or prints.
 */
#ifndef GGUF_VRAM_CLIENT_H
#define GGUF_VRAM_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GVC_API __attribute__((visibility("default")))

enum gvc_status {
    GVC_OK = 0,
    GVC_ERR_INVALID_ARGUMENT = 1, /* a caller bug: NULL, a bad index */
    GVC_ERR_NO_SERVER = 2,        /* nothing listens at the socket path: start `gguf-vram serve` */
    GVC_ERR_SERVER = 3,           /* the server refused the request: gvc_last_error_code() says why */
    GVC_ERR_PROTOCOL = 4,         /* the server sent something this client cannot read */
    GVC_ERR_DISCONNECTED = 5,     /* the server closed the connection (it stopped, or was killed) */
    GVC_ERR_SOCKET = 6,           /* another socket failure (errno in the message) */
    GVC_ERR_NO_DEVICE = 7,        /* no CUDA driver or device in this process */
    GVC_ERR_CUDA = 8,             /* mapping the model's memory failed */
    GVC_ERR_TIMEOUT = 9,          /* no reply within the time given */
    GVC_ERR_HOST_MEMORY = 10,
};

typedef struct gvc_conn gvc_conn;
typedef struct gvc_attachment gvc_attachment;

/* One tensor of an attached model, on one device. */
typedef struct gvc_tensor {
    const char *name;
    int ggml_type;       /* ggml's enum ggml_type (GGML_TYPE_Q4_K = 12, …) */
    int n_dims;
    int64_t ne[4];       /* ggml's order: ne[0] is the fastest-varying dimension; unused ones are 1 */
    int device;          /* the CUDA device that holds this copy */
    void *data;          /* its first byte: a device pointer, valid until gvc_detach */
    uint64_t bytes;
    uint64_t file_offset; /* where the bytes are in the model's file (its shard-th file for a split set) */
    int shard;
    int alias;           /* 1: shares another tensor's memory (a tied LM head) */
} gvc_tensor;

/* The socket a server listens on by default: $GGUF_VRAM_SOCKET, else $XDG_RUNTIME_DIR/gguf-vram/serve.sock,
 * else /tmp/gguf-vram-<uid>/serve.sock. Writes it (NUL-terminated) into buf. */
GVC_API int gvc_default_socket(char *buf, size_t bytes);

/* Connects (socket_path NULL: the default) and greets the server. */
GVC_API int gvc_connect(const char *socket_path, gvc_conn **out);
/* Closes the connection: every attachment made through it is let go by the server (they stay mapped here
 * until gvc_detach). */
GVC_API void gvc_close(gvc_conn *conn);

/* Asks the server to load the model at `path` (resolved against this process's folder) onto `device`
 * (-1: the server's default), and waits for it (the server answers at once when it is resident already).
 * The model's id ("m3") is written into id_out. verify != 0 checks every byte in VRAM against the file. */
GVC_API int gvc_load(gvc_conn *conn, const char *path, int device, int verify, char *id_out, size_t id_bytes);

/* Any request of the protocol (src/serve/protocol.ts), as JSON without "v" and "id" (they are added):
 * e.g. {"op":"list"}. Waits for the reply, skipping events, and returns it as a NUL-terminated JSON string
 * the caller frees with gvc_free. A reply with "ok":false is GVC_ERR_SERVER (the reply is still returned). */
GVC_API int gvc_request(gvc_conn *conn, const char *json, char **reply);
GVC_API void gvc_free(void *p);

/* Attaches to a resident model (its id, or the path of its file: a `model` with a '/' or ending in ".gguf"
 * is a path, resolved against this process's folder): maps its memory on every device it spans and reads
 * its tensor table. The caller's current CUDA device is left as it was. Any failure after the server
 * agreed (a malformed table, a mapping that fails) detaches again before returning: nothing stays held. */
GVC_API int gvc_attach(gvc_conn *conn, const char *model, gvc_attachment **out);
/* Waits for the work on each of the model's devices (cudaDeviceSynchronize), unmaps its memory here and
 * tells the server this attachment is over (if the connection is still open: a closed or dead connection
 * is no failure here). The attachment is freed even when that reports an error; pointers into it are
 * invalid from here on. gvc_detach(NULL) does nothing. */
GVC_API int gvc_detach(gvc_attachment *attachment);

GVC_API const char *gvc_model_id(const gvc_attachment *attachment);
/* The model's files by shard (one file, or a split set's files in order): absolute paths as the server
 * opened them, valid until gvc_detach; NULL for a shard out of range. An engine reads the GGUF header
 * (hyperparameters, tokenizer) from gvc_model_file(attachment, 0), and a tensor's bytes from
 * gvc_model_file(attachment, tensor->shard) at tensor->file_offset. */
GVC_API int gvc_model_file_count(const gvc_attachment *attachment);
GVC_API const char *gvc_model_file(const gvc_attachment *attachment, int shard);
GVC_API int gvc_tensor_count(const gvc_attachment *attachment);
GVC_API const gvc_tensor *gvc_tensor_at(const gvc_attachment *attachment, int index);
/* The tensor named `name` on `device` (-1: the first copy found); NULL when there is none. */
GVC_API const gvc_tensor *gvc_find(const gvc_attachment *attachment, const char *name, int device);
/* The devices the model spans (one; one per GPU of a split; one per replica): device index, the device
 * pointer of its memory's first byte, and its size. */
GVC_API int gvc_device_count(const gvc_attachment *attachment);
GVC_API int gvc_device_at(const gvc_attachment *attachment, int index, int *device, void **base, uint64_t *bytes);

/* The last failure on this thread: one sentence, and for GVC_ERR_SERVER the server's code ("" otherwise). */
GVC_API const char *gvc_last_error(void);
GVC_API const char *gvc_last_error_code(void);

#ifdef __cplusplus
}
#endif

#endif /* GGUF_VRAM_CLIENT_H */
