/*
 * json.h — the little JSON the client needs to read a server's replies: a check
 * that a text is one well-formed object (bounded depth, nothing allocated),
 * then lookups of members and items as spans of the text, decoded on demand.
 * Every function is safe on any bytes: a hostile reply fails a check, it never
 * reads outside the text.
 */
#ifndef GGUF_VRAM_CLIENT_JSON_H
#define GGUF_VRAM_CLIENT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The bytes [at, end) of one value in the text. */
typedef struct gvc_span {
    size_t at, end;
} gvc_span;

/* Nesting deeper than this is refused (no reply of the protocol comes near it). */
#define GVC_JSON_MAX_DEPTH 32

/* true when text[0, len) is one JSON object with only whitespace around it; *root is that object.
 * Otherwise false and `why` says what is wrong and where. */
bool gvc_json_check(const char *text, size_t len, gvc_span *root, char *why, size_t why_bytes);

/* The value of member `key` of an object (the last one, when a key repeats); false when it has none. */
bool gvc_json_member(const char *text, gvc_span object, const char *key, gvc_span *value);
/* The number of items of an array (0 when the value is no array), and item `index`. */
size_t gvc_json_length(const char *text, gvc_span array);
bool gvc_json_item(const char *text, gvc_span array, size_t index, gvc_span *value);

/* A string value decoded (escapes resolved, UTF-8) into out[0, cap) and NUL-terminated; *bytes gets its
 * decoded length. False when the value is no string, decodes to a NUL byte, or does not fit. */
bool gvc_json_string(const char *text, gvc_span value, char *out, size_t cap, size_t *bytes);
/* The decoded length of a string value (for sizing a buffer); false when it is no string. */
bool gvc_json_string_bytes(const char *text, gvc_span value, size_t *bytes);
/* An integer value (no fraction, no exponent) that fits int64_t. */
bool gvc_json_int(const char *text, gvc_span value, int64_t *out);
/* true / false / null. */
bool gvc_json_bool(const char *text, gvc_span value, bool *out);
bool gvc_json_is_null(const char *text, gvc_span value);

#endif /* GGUF_VRAM_CLIENT_JSON_H */
