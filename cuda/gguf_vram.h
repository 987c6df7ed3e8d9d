/*
 * gguf_vram.h — the whole C API of libgguf_vram, the GPU half of gguf-vram.
 *
 * The TypeScript side (src/cuda/) reads files and decides what goes where; this
 * library owns every CUDA call: devices, the one device allocation that holds a
 * model's weights (the arena), pinned staging buffers with asynchronous
 * host-to-device copies, and GPU checksums that prove VRAM holds the file's bytes.
 *
 * Rules:
 *  - Every function returns an int status (GV_OK = 0) unless it is a plain getter.
 *    On failure it records a message in a thread-local buffer (gv_last_error) and
 *    frees whatever it took before returning. It never exits, aborts or prints.
 *  - Handles are opaque. Each *_create has a *_free; *_free(NULL) is a no-op.
 *  - All sizes and offsets are bytes, as uint64_t. Device pointers are returned as
 *    uint64_t so a caller can pass them around without dereferencing them.
 *  - Thread-safe: any thread may call any function (the CUDA runtime is
 *    thread-safe); a stager is used by one thread at a time.
 */
#ifndef GGUF_VRAM_H
#define GGUF_VRAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GV_API __attribute__((visibility("default")))

#define GV_ABI_VERSION 5

/* ─── status codes ──────────────────────────────────────────────────────────── */

enum gv_status {
    GV_OK = 0,
    GV_ERR_INVALID_ARGUMENT = 1, /* a caller bug: NULL handle, range outside the arena, … */
    GV_ERR_NO_DEVICE = 2,        /* no CUDA device, or no usable driver (cudaErrorNoDevice, cudaErrorInsufficientDriver) */
    GV_ERR_BAD_DEVICE = 3,       /* device index out of range */
    GV_ERR_OUT_OF_MEMORY = 4,    /* a device allocation failed */
    GV_ERR_HOST_MEMORY = 5,      /* malloc or cudaHostRegister failed */
    GV_ERR_COPY = 6,             /* a copy, stream or event operation failed */
    GV_ERR_CUDA = 7,             /* any other CUDA error */
    GV_ERR_CANCELLED = 8,        /* an upload or checksum saw its stop flag */
    GV_ERR_READ = 9,             /* read() of the model file failed (gv_last_os_error has errno) */
    GV_ERR_FILE_SHORT = 10,      /* the model file ended before a range it was asked for */
    GV_ERR_NOT_FREED = 11,       /* gv_arena_free could not free: the arena is untouched and still counted */
    GV_ERR_BENCH_MODE = 12,      /* an upload ran in a benchmark mode (gv_debug_upload_mode): VRAM holds no model */
    GV_ERR_NO_SERVER = 13,       /* nothing listens at the socket path (ENOENT, ECONNREFUSED) */
    GV_ERR_IN_USE = 14,          /* another live server holds the socket path (its lock) */
    GV_ERR_PROTOCOL = 15,        /* a malformed or oversized frame (cuda/wire.h) */
    GV_ERR_DISCONNECTED = 16,    /* the other side closed the connection */
    GV_ERR_SOCKET = 17,          /* any other socket failure (gv_last_os_error has errno) */
};

/* The library's ABI version (GV_ABI_VERSION), to check the .so matches the bindings. */
GV_API int gv_abi_version(void);

/* The message of the last failure on this thread ("" when none). Valid until the next call on this thread.
 * A successful call does not clear it: it tells the last failure until the next one replaces it. */
GV_API const char *gv_last_error(void);

/* The cudaError_t behind the last failure on this thread (0 when the failure was not a CUDA error,
 * injected faults included). */
GV_API int gv_last_cuda_error(void);

/* The errno behind the last GV_ERR_READ on this thread (0 otherwise). */
GV_API int gv_last_os_error(void);

/* CUDA runtime and driver versions (e.g. 13000); driver is 0 when no driver is installed. */
GV_API int gv_versions(int *runtime, int *driver);

/* ─── devices ───────────────────────────────────────────────────────────────── */

GV_API int gv_device_count(int *count);

typedef struct gv_device_info {
    char name[256];
    int major, minor;          /* compute capability */
    int multiprocessors;
    int pci_bus, pci_device, pci_domain;
    uint64_t total_bytes;      /* device memory */
    uint64_t free_bytes;       /* free now (cudaMemGetInfo) */
} gv_device_info;

GV_API int gv_device_info_get(int device, gv_device_info *out);

/* Create the device's primary context now (it takes 300+ ms on a large GPU), so a
 * caller can overlap it with other work. Later calls return at once. */
GV_API int gv_device_init(int device);

/* cudaMemGetInfo for the device. */
GV_API int gv_mem_info(int device, uint64_t *free_bytes, uint64_t *total_bytes);

/* ─── the arena: one device allocation that holds a model ──────────────────── */

typedef struct gv_arena gv_arena;

/* Arena flags. */
enum gv_arena_flags {
    /* One cuMemCreate allocation (CUDA virtual memory, granularity 2 MiB) that gv_arena_export hands to
     * other processes as a POSIX file descriptor; mapped read-write for `device` and every device that
     * can reach it peer to peer. Its memory lives until every process that imported it unmaps it. */
    GV_ARENA_SHAREABLE = 1,
};

/* One cudaMalloc of `bytes` on `device`. Tensors live at 256-byte-aligned offsets in it. */
GV_API int gv_arena_create(int device, uint64_t bytes, gv_arena **out);
/* The same with gv_arena_flags. */
GV_API int gv_arena_create_ex(int device, uint64_t bytes, uint32_t flags, gv_arena **out);
GV_API uint64_t gv_arena_device_ptr(const gv_arena *arena);
/* The bytes asked for; the allocation behind a shareable arena is rounded up (gv_arena_alloc_bytes). */
GV_API uint64_t gv_arena_bytes(const gv_arena *arena);
GV_API uint64_t gv_arena_alloc_bytes(const gv_arena *arena);
GV_API int gv_arena_device(const gv_arena *arena);
GV_API int gv_arena_flags(const gv_arena *arena);
/* Frees the arena. It is freed and uncounted once cudaFree (or, shareable, the unmapping) was called,
 * even when that reports an earlier, sticky error. When the device cannot even be selected, nothing is
 * called: GV_ERR_NOT_FREED, and the arena stays valid and counted (the caller may try again). */
GV_API int gv_arena_free(gv_arena *arena);
/* A shareable arena's allocation as a new POSIX file descriptor (the caller closes it, or passes it on
 * with gv_ipc_send). Another process maps it with cuMemImportFromShareableHandle. */
GV_API int gv_arena_export(gv_arena *arena, int *fd);

/* Synchronous copies, for tests and small reads: device range → host, host → device. */
GV_API int gv_arena_read(gv_arena *arena, uint64_t offset, void *dst, uint64_t bytes);
GV_API int gv_arena_write(gv_arena *arena, uint64_t offset, const void *src, uint64_t bytes);

/* A shareable allocation another process exported (gv_arena_export), received as `fd` (which stays the
 * caller's to close), mapped read-write for `device` as an arena of `bytes` (of the allocation's
 * alloc_bytes): reads, writes and checksums work as on any arena; gv_arena_free unmaps it (the memory
 * itself lives until every process that maps it has let go). */
GV_API int gv_arena_import(int fd, uint64_t alloc_bytes, uint64_t bytes, int device, gv_arena **out);

/* Closes a file descriptor (a received one the caller does not keep). */
GV_API int gv_close_fd(int fd);

/* ─── pinned host memory ────────────────────────────────────────────────────── */

/* Page-locks an existing host range (cudaHostRegister) so copies from it run at
 * full PCIe speed. read_only != 0 adds cudaHostRegisterReadOnly, which allows
 * registering a read-only mapping such as an mmap of a file. */
GV_API int gv_pin(void *ptr, uint64_t bytes, int read_only);
GV_API int gv_unpin(void *ptr);

/* ─── the stager: pinned slots and a stream for async uploads ──────────────── */

typedef struct gv_stager gv_stager;

/* Stager flags. */
enum gv_stager_flags {
    GV_STAGER_HUGE_PAGES = 1, /* the ring in 2 MiB transparent huge pages (advice: ordinary pages without THP) */
};

/* `slots` host buffers of `slot_bytes` each, one page-aligned malloc + cudaHostRegister
 * for the whole ring (far cheaper to set up than cudaMallocHost), one event per slot
 * and one non-blocking stream, on `device`. `flags`: gv_stager_flags. `gate`: see below
 * (NULL when no other thread needs to know). *out is written before the gate opens, so a
 * worker that passes a slot of shared memory as `out` publishes its ring atomically. */
GV_API int gv_stager_create(int device, uint32_t slots, uint64_t slot_bytes, uint32_t flags, gv_stager **out, int32_t *gate);

/* Host address of slot `slot`; NULL when out of range. */
GV_API void *gv_stager_slot(gv_stager *stager, uint32_t slot);
GV_API uint64_t gv_stager_slot_bytes(const gv_stager *stager);
GV_API uint32_t gv_stager_slots(const gv_stager *stager);

/* Blocks until every copy enqueued from `slot` has finished, so the slot can be refilled. */
GV_API int gv_stager_wait(gv_stager *stager, uint32_t slot);

/* Enqueues copies from slot `slot` into the arena, then records the slot's event.
 * `pieces` holds n_pieces triples (offset in the slot, offset in the arena, bytes).
 * Every piece is checked against the slot and the arena before anything is enqueued. */
GV_API int gv_stager_upload(gv_stager *stager, uint32_t slot, gv_arena *arena,
                            const uint64_t *pieces, uint32_t n_pieces);

/* Enqueues one copy from any host address (pinned or not) into the arena on the
 * stager's stream, and records an event in slot `slot` (to wait on with gv_stager_wait). */
GV_API int gv_stager_upload_from(gv_stager *stager, uint32_t slot, const void *src,
                                 gv_arena *arena, uint64_t arena_offset, uint64_t bytes);

/* Blocks until all work on the stager's stream has finished. */
GV_API int gv_stager_sync(gv_stager *stager);
/* Drains the stream, then frees everything; the stager is gone even when that reports an error.
 * When gv_stager_upload* fails part-way, it drains the stream before returning, so no copy
 * from the slot is left in flight. */
GV_API int gv_stager_free(gv_stager *stager);

/* ─── gates: when another thread may free what a worker thread uses ────────── */

/* A worker thread that is terminated while it is inside a native call keeps running that call;
 * its runtime may report the thread gone before the call returns. So the calls a worker makes on
 * memory another thread frees afterwards (its ring, the arena, the files) take a gate: one int32
 * in shared memory per worker, 0 idle, 1 inside a call, 2 retired. A call enters with a
 * compare-and-swap 0 → 1 and leaves with 0; the thread that wants to free the worker's resources
 * retires it with a compare-and-swap 0 → 2, which succeeds only between calls, and after which
 * every gated call returns GV_ERR_CANCELLED at once without touching anything. */
enum gv_gate_state { GV_GATE_IDLE = 0, GV_GATE_INSIDE = 1, GV_GATE_RETIRED = 2 };

/* ─── uploads: file → pinned slot → arena, on the calling thread ───────────── */

/* One upload as every thread that works on it sees it. It lives in memory all of them share
 * (a SharedArrayBuffer on the TypeScript side) and changes only through atomics. The layout is
 * part of the ABI (24 bytes). */
typedef struct gv_upload_shared {
    int32_t next_span;   /* the cursor: the first span no thread has claimed */
    int32_t stop;        /* != 0: stop before the next span (cancelled, or a thread failed) */
    uint64_t bytes_done; /* bytes enqueued by every thread so far */
    uint32_t parties;    /* threads sharing the cursor: sizes the runs they claim */
    uint32_t schedule;   /* GV_SCHEDULE_* */
} gv_upload_shared;

/* How threads split the spans: runs of 1/P of the spans left (tapered, the default: long
 * sequential reads first, single spans at the end), 1/(2P) (guided), 4 spans (chunks), or one
 * contiguous share each (shares). */
enum gv_schedule { GV_SCHEDULE_TAPERED = 0, GV_SCHEDULE_GUIDED = 1, GV_SCHEDULE_CHUNKS = 2, GV_SCHEDULE_SHARES = 3 };

/* Spans, packed into one array of words: words [0, n_spans] are word offsets (span i's record is
 * words[words[i] .. words[i + 1])), and a record is
 *     fd, file offset, bytes, piece count, then (offset in the span, arena offset, bytes) per piece.
 * A span is one read() of `bytes` (at most the stager's slot) and the copies out of it.
 *
 * gv_upload_step claims runs of spans from shared->next_span (compare-and-swap), and for each
 * span: waits for its slot, reads the file into it (looping on short reads), enqueues its pieces
 * and moves to the next slot. `run` holds this thread's current run [first, end) between calls
 * (start it at {0, 0}). `claims[i]` is set to worker + 1 when span i is claimed; a span claimed
 * twice is an error (GV_ERR_INVALID_ARGUMENT). It returns after max_spans spans (so the caller can
 * yield), or when no span is left: then the stream is drained and *finished = 1.
 *
 * It stops with GV_ERR_CANCELLED when shared->stop is set; on any failure it sets shared->stop
 * so the other threads stop too. Either way, no copy of this stager is in flight on return. */
GV_API int gv_upload_step(gv_stager *stager, gv_arena *arena, const uint64_t *spans, uint32_t n_spans,
                          gv_upload_shared *shared, uint32_t *claims, uint32_t worker, int32_t *run,
                          uint32_t max_spans, uint64_t *bytes_out, int32_t *finished, int32_t *gate);

/* Host checksums of file ranges, shared among threads the same way: chunks holds n quadruples
 * (fd, file offset, bytes, first word) and sums[i] receives gv_checksum_host_partial of chunk i
 * (a chunk is a piece of a tensor: first word is where it starts in the tensor, in words).
 * Chunks are claimed one at a time from shared->next_span; each is read into `buffer`, which must
 * hold the largest chunk. Returns after max_chunks chunks, or *finished = 1 when none is left. */
GV_API int gv_checksum_file_step(const uint64_t *chunks, uint32_t n, gv_upload_shared *shared, uint64_t *sums,
                                 void *buffer, uint64_t buffer_bytes, uint32_t max_chunks, int32_t *finished, int32_t *gate);

/* ─── checksums: proof that VRAM holds the file's bytes ─────────────────────── */

/* A 64-bit checksum of a byte range, the same on host and device:
 *   words w_i = the range as little-endian uint64, the last one zero-padded;
 *   sum = Σ mix64(w_i ^ (i * 0x9E3779B97F4A7C15))  (mod 2^64);
 *   checksum = mix64(sum ^ bytes)
 * where mix64 is splitmix64's finalizer. mix64 is a bijection, so changing any one
 * word always changes the sum; the index makes moved words count too. */
GV_API uint64_t gv_checksum_host(const void *data, uint64_t bytes);

/* The checksum in pieces, for ranges read in chunks: the raw sum over `data`, whose
 * first byte is word `first_word` of the whole range (so a piece must start on an
 * 8-byte boundary of the range, and only the last piece may end off one). Add the
 * pieces' sums (mod 2^64), then gv_checksum_finish(sum, total bytes). */
GV_API uint64_t gv_checksum_host_partial(const void *data, uint64_t bytes, uint64_t first_word);
GV_API uint64_t gv_checksum_finish(uint64_t sum, uint64_t bytes);

/* Checksums of n ranges of the arena, computed on the GPU. `ranges` holds n pairs
 * (offset, bytes); each offset must be 8-byte aligned. It runs on the legacy default
 * stream, which does not wait for a stager's non-blocking stream: gv_stager_sync first. */
GV_API int gv_checksum_device(gv_arena *arena, const uint64_t *ranges, uint32_t n, uint64_t *out);

/* ─── copies between devices (replicas) ─────────────────────────────────────── */

/* Whether `device` can read and write `peer`'s memory directly (NVLink or PCIe peer to
 * peer), both ways; when it can, peer access is enabled both ways (once per process:
 * later calls find it enabled). *enabled is 1 then, else 0 (not an error). */
GV_API int gv_peer_enable(int device, int peer, int *enabled);

typedef struct gv_copy gv_copy;

/* Starts copying [offset, offset + bytes) of arena `src` to the same range of arena `dst`
 * (on another device: cudaMemcpyPeerAsync, over the peer link when enabled, else through
 * the host), on a stream of its own on the source device, and records an event after it. */
GV_API int gv_copy_start(gv_arena *dst, gv_arena *src, uint64_t offset, uint64_t bytes, gv_copy **out);
/* *done = 1 once the copy has finished (a failure of the copy itself is returned here). */
GV_API int gv_copy_query(gv_copy *copy, int *done);
/* Waits for the copy, then frees it; it is gone even when the wait reports an error. */
GV_API int gv_copy_free(gv_copy *copy);

/* ─── resident models: the server's socket, and a client's ──────────────────── */

/* Frames, limits and the byte layout are cuda/wire.h's. The server's side: one listening Unix socket, the
 * connections it accepted, and a thread-safe queue of what is to be sent to each; a thread (a Bun Worker)
 * waits in gv_ipc_wait and hands the events to the JS thread, which answers with gv_ipc_send. */
typedef struct gv_ipc_server gv_ipc_server;

/* Binds `path` (its folder must exist; the caller checks its owner and mode), mode 0600, and listens. A
 * lock beside it (`path` + ".lock", flock, held while the server lives) tells live servers from dead ones:
 * when another process holds it, GV_ERR_IN_USE; when nobody does, a socket file left at `path` is a dead
 * server's and is replaced. */
GV_API int gv_ipc_listen(const char *path, gv_ipc_server **out);

/* What gv_ipc_wait reports, packed into its buffer one after another, each a 24-byte head — u32 type,
 * u32 connection, u32 peer pid, u32 peer uid, u64 payload bytes — then the payload, zero-padded to 8. */
enum gv_ipc_event_type {
    GV_IPC_CONNECTED = 1,      /* a connection from this user was accepted (pid, uid from SO_PEERCRED) */
    GV_IPC_MESSAGE = 2,        /* a whole request frame arrived: the payload is its JSON */
    GV_IPC_CLOSED = 3,         /* the connection is gone (the peer closed it, it failed, or gv_ipc_disconnect) */
    GV_IPC_REFUSED = 4,        /* another user's connection: answered with a PEER_REFUSED failure and closed */
    GV_IPC_PROTOCOL_ERROR = 5, /* a bad frame (header, size, binary part or descriptors from a client):
                                  answered with a BAD_REQUEST failure and closed; the payload says what (then CLOSED) */
    GV_IPC_STOPPED = 6,        /* gv_ipc_stop was called: no more events */
};

/* Waits up to timeout_ms (-1: no limit; 0: only what is ready) until something happens, then reports every
 * event there is, as many whole events as fit `out` (the rest on the next call; an event larger than `out`
 * is dropped with GV_ERR_PROTOCOL; a request is at most GV_WIRE_MAX_REQUEST bytes). *written = 0 after a
 * timeout. Meanwhile it accepts connections, reads frames and sends what gv_ipc_send queued. One thread at
 * a time may wait (another gets GV_ERR_INVALID_ARGUMENT). After gv_ipc_stop every call returns at once,
 * ending with GV_IPC_STOPPED. The payload of GV_IPC_CLOSED, GV_IPC_REFUSED and GV_IPC_PROTOCOL_ERROR is
 * one sentence saying why. */
GV_API int gv_ipc_wait(gv_ipc_server *server, int timeout_ms, void *out, uint64_t cap, uint64_t *written);

/* Queues one frame for connection `conn` and wakes the waiting thread; never blocks (any thread). The
 * descriptors are the server's to close from here on, sent or not. A connection that is gone:
 * GV_ERR_DISCONNECTED (the descriptors closed). */
GV_API int gv_ipc_send(gv_ipc_server *server, uint32_t conn, const void *json, uint64_t json_bytes, const void *bin,
                       uint64_t bin_bytes, const int *fds, uint32_t n_fds);

/* Closes a connection once what is queued for it is sent, or once its peer has read nothing for 2 s (any
 * thread); GV_IPC_CLOSED follows. The same happens to a connection after a bad frame, or another user's. */
GV_API int gv_ipc_disconnect(gv_ipc_server *server, uint32_t conn);

/* Stops taking connections and wakes the waiting thread, which gets GV_IPC_STOPPED (any thread). */
GV_API int gv_ipc_stop(gv_ipc_server *server);

/* Open connections and frames still queued, for leak checks. */
GV_API int gv_ipc_counts(gv_ipc_server *server, uint64_t *connections, uint64_t *queued);

/* Sends what the sockets take of the frames still queued (without waiting), closes every connection, removes
 * the socket file (if it is still the one this server made) and releases the lock (the lock file stays).
 * Call it once no thread waits in gv_ipc_wait (GV_ERR_INVALID_ARGUMENT otherwise, and nothing is freed). */
GV_API int gv_ipc_free(gv_ipc_server *server);

/* A client's side, for Bun (C programs use libgguf_vram_client, cuda/client/gguf_vram_client.h). */
typedef struct gv_ipc_client gv_ipc_client;

/* Connects to the server at `path`: GV_ERR_NO_SERVER when nothing listens there. */
GV_API int gv_ipc_connect(const char *path, gv_ipc_client **out);
/* Sends one request frame (JSON only, at most GV_WIRE_MAX_REQUEST bytes); blocks until it is written. */
GV_API int gv_ipc_request(gv_ipc_client *client, const void *json, uint64_t json_bytes);
/* Waits up to timeout_ms (0: only what has arrived; -1: no limit) for a whole frame from the server.
 * *ready = 1 when one is there: its sizes in *json_bytes, *bin_bytes, *n_fds; take it with gv_ipc_take. */
GV_API int gv_ipc_poll(gv_ipc_client *client, int timeout_ms, int *ready, uint64_t *json_bytes, uint64_t *bin_bytes,
                       uint32_t *n_fds);
/* Copies the frame gv_ipc_poll announced into json (json_bytes), bin (bin_bytes) and fds (n_fds, each the
 * caller's to close) and drops it from the client. */
GV_API int gv_ipc_take(gv_ipc_client *client, void *json, void *bin, int *fds);
/* Closes the connection and frees the client (descriptors received and not taken are closed). */
GV_API int gv_ipc_close(gv_ipc_client *client);

/* ─── measurement ───────────────────────────────────────────────────────────── */

/* Host-to-device cudaMemcpy bandwidth for a `bytes` buffer, median of `reps` timed
 * copies after one warm-up: pinned (malloc + cudaHostRegister) or pageable. */
GV_API int gv_measure_h2d(int device, uint64_t bytes, int pinned, int reps, double *gb_per_s);

/* Pinned host-to-device cudaMemcpy to n devices at once, one thread per device (each with
 * its own pinned buffer of `bytes` and its own device buffer), `reps` copies each after a
 * warm-up and a barrier. gb_per_s[i] is device i's rate over its own copies, gb_per_s[n]
 * the aggregate: every byte moved over the time from the barrier to the last copy's end. */
GV_API int gv_measure_h2d_many(const int *devices, int n, uint64_t bytes, int reps, double *gb_per_s);

/* pread() of the whole open file `fd` (its first file_bytes) by `threads` threads at once,
 * claiming chunk_bytes at a time from a shared cursor, each into its own buffer: what the
 * page cache (or the disk) gives to that many readers, in GB/s. */
GV_API int gv_measure_read(int fd, uint64_t file_bytes, int threads, uint64_t chunk_bytes, double *gb_per_s);

/* ─── accounting and fault injection, for tests ─────────────────────────────── */

/* What the library holds now, across all threads: arenas and their bytes, pinned
 * ranges and their bytes (stager slots and gv_pin), stagers. A stager slot counts its
 * slot_bytes rounded up to whole host pages (what it registers); gv_pin counts `bytes`. */
typedef struct gv_live_counts {
    uint64_t arenas, arena_bytes;
    uint64_t pinned_ranges, pinned_bytes;
    uint64_t stagers;
    uint64_t copies; /* gv_copy handles not yet freed */
} gv_live_counts;

GV_API void gv_live(gv_live_counts *out);

enum gv_fault {
    GV_FAULT_DEVICE_ALLOC = 0, /* gv_arena_create's cudaMalloc (or cuMemCreate) → GV_ERR_OUT_OF_MEMORY */
    GV_FAULT_HOST_PIN = 1,     /* cudaHostRegister in gv_stager_create / gv_pin → GV_ERR_HOST_MEMORY */
    GV_FAULT_COPY = 2,         /* cudaMemcpyAsync in gv_stager_upload* → GV_ERR_COPY */
    GV_FAULT_EVENT = 3,        /* cudaEventRecord / cudaEventSynchronize → GV_ERR_COPY */
    GV_FAULT_PEER_COPY = 4,    /* cudaMemcpyPeerAsync in gv_copy_start (counted for the destination) → GV_ERR_COPY */
    GV_FAULT_FREE_DEVICE = 5,  /* selecting the device in gv_arena_free → GV_ERR_NOT_FREED (nothing freed) */
    GV_FAULT_KINDS = 6,
};

/* Makes the k-th call (1-based, counted from now, across threads) of that kind fail as
 * if CUDA had failed, with "injected fault" in the message. k <= 0 disarms the kind. */
GV_API int gv_fault_inject(int kind, int64_t k);
/* From now on only calls for `device` count towards (and fire) injected faults; -1: any device.
 * gv_fault_reset sets it back to -1. */
GV_API void gv_fault_device(int device);
/* How many injected faults of `kind` have fired since the last gv_fault_reset (-1 for a bad kind). */
GV_API int64_t gv_fault_fired(int kind);
/* Disarms every kind, zeroes the fired counts and counts every device again. */
GV_API void gv_fault_reset(void);

/* Tests: fill every arena created from now on with `byte` (cudaMemset) before it is returned, so
 * a range the upload never writes shows up as poison instead of a previous load's bytes from a
 * reused allocation. A negative byte turns it off (the default). */
GV_API void gv_debug_poison(int byte);

/* Benchmarks only: gv_upload_step does half of its work, to show where an upload's time goes —
 * GV_UPLOAD_READ_ONLY reads every span into its pinned slot and copies nothing; GV_UPLOAD_COPY_ONLY
 * copies the slots to the arena without reading the file (the arena then holds whatever the slots
 * held). GV_UPLOAD_NORMAL (the default) does both. Process-wide. */
enum gv_upload_mode { GV_UPLOAD_NORMAL = 0, GV_UPLOAD_READ_ONLY = 1, GV_UPLOAD_COPY_ONLY = 2 };
GV_API void gv_debug_upload_mode(int mode);
/* So that no load made in such a mode can pass for a model: gv_upload_step ends every job it finishes in
 * a mode other than GV_UPLOAD_NORMAL with GV_ERR_BENCH_MODE (*finished = 1, the bytes counted). */

/* Tests: a gated call that keeps the calling thread busy for `ms` milliseconds (no system call, so nothing
 * can interrupt it), then stores 1 at *returned (atomically) before it leaves the gate; GV_ERR_CANCELLED at
 * once when the gate is retired. Shows when a Worker terminated during a native call stops (workers.ts). */
GV_API int gv_debug_block(int ms, int32_t *returned, int32_t *gate);

#ifdef __cplusplus
}
#endif

#endif /* GGUF_VRAM_H */
