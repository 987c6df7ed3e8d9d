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

#endif /* GGUF_VRAM_WIRE_H */
