/*
 * json.cu — a small, strict JSON reader (RFC 8259) for the client's replies:
 * one recursive scan with a depth bound checks the whole text once; lookups
 * then walk the same scan over the spans they need. Nothing is allocated.
 */
#include <stdio.h>
#include <string.h>

#include "json.h"

struct cursor {
    const char *text;
    size_t len, at;
    const char *error; /* the first failure, NULL while none */
    size_t error_at;
};

static bool fail(cursor *c, const char *what) {
    if (c->error == NULL) c->error = what, c->error_at = c->at;
    return false;
}

static void skip_space(cursor *c) {
    while (c->at < c->len && (c->text[c->at] == ' ' || c->text[c->at] == '\t' || c->text[c->at] == '\n' || c->text[c->at] == '\r')) c->at++;
}

static bool peek(const cursor *c, char ch) { return c->at < c->len && c->text[c->at] == ch; }

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* ─── scanning ──────────────────────────────────────────────────────────────── */

static bool scan_string(cursor *c) {
    if (!peek(c, '"')) return fail(c, "a string was expected");
    c->at++;
    while (c->at < c->len) {
        unsigned char ch = (unsigned char)c->text[c->at];
        if (ch == '"') {
            c->at++;
            return true;
        }
        if (ch < 0x20) return fail(c, "a control character inside a string");
        if (ch != '\\') {
            c->at++;
            continue;
        }
        if (c->at + 1 >= c->len) break;
        char escape = c->text[c->at + 1];
        if (escape == 'u') {
            if (c->at + 6 > c->len) break;
            for (int i = 2; i < 6; i++)
                if (hex_digit(c->text[c->at + i]) < 0) return fail(c, "a bad \\u escape");
            c->at += 6;
        } else if (strchr("\"\\/bfnrt", escape) != NULL && escape != '\0') {
            c->at += 2;
        } else {
            return fail(c, "a bad escape in a string");
        }
    }
    return fail(c, "a string that never ends");
}

static bool scan_digits(cursor *c) {
    size_t start = c->at;
    while (c->at < c->len && c->text[c->at] >= '0' && c->text[c->at] <= '9') c->at++;
    return c->at > start || fail(c, "a digit was expected");
}

static bool scan_number(cursor *c) {
    if (peek(c, '-')) c->at++;
    if (peek(c, '0')) c->at++;
    else if (!scan_digits(c)) return false;
    if (peek(c, '.')) {
        c->at++;
        if (!scan_digits(c)) return false;
    }
    if (peek(c, 'e') || peek(c, 'E')) {
        c->at++;
        if (peek(c, '+') || peek(c, '-')) c->at++;
        if (!scan_digits(c)) return false;
    }
    return true;
}

static bool scan_literal(cursor *c, const char *word) {
    size_t n = strlen(word);
    if (c->len - c->at < n || memcmp(c->text + c->at, word, n) != 0) return fail(c, "an unknown word");
    c->at += n;
    return true;
}

static bool scan_value(cursor *c, int depth);

/* An object or array: `open` at the cursor, members or items, then `close`. */
static bool scan_container(cursor *c, int depth, char open, char close) {
    if (depth >= GVC_JSON_MAX_DEPTH) return fail(c, "values nested too deep");
    c->at++;
    skip_space(c);
    if (peek(c, close)) {
        c->at++;
        return true;
    }
    for (;;) {
        if (open == '{') {
            if (!scan_string(c)) return false;
            skip_space(c);
            if (!peek(c, ':')) return fail(c, "':' was expected after a key");
            c->at++;
            skip_space(c);
        }
        if (!scan_value(c, depth + 1)) return false;
        skip_space(c);
        if (peek(c, close)) {
            c->at++;
            return true;
        }
        if (!peek(c, ',')) return fail(c, open == '{' ? "',' or '}' was expected" : "',' or ']' was expected");
        c->at++;
        skip_space(c);
    }
}

static bool scan_value(cursor *c, int depth) {
    if (c->at >= c->len) return fail(c, "the text ends where a value was expected");
    char ch = c->text[c->at];
    switch (ch) {
    case '{': return scan_container(c, depth, '{', '}');
    case '[': return scan_container(c, depth, '[', ']');
    case '"': return scan_string(c);
    case 't': return scan_literal(c, "true");
    case 'f': return scan_literal(c, "false");
    case 'n': return scan_literal(c, "null");
    default: return ch == '-' || (ch >= '0' && ch <= '9') ? scan_number(c) : fail(c, "a value was expected");
    }
}

bool gvc_json_check(const char *text, size_t len, gvc_span *root, char *why, size_t why_bytes) {
    cursor c = {text, len, 0, NULL, 0};
    skip_space(&c);
    size_t start = c.at;
    bool ok = peek(&c, '{') ? scan_value(&c, 0) : fail(&c, "the reply is not a JSON object");
    size_t end = c.at;
    skip_space(&c);
    if (ok && c.at != len) ok = fail(&c, "text follows the object");
    if (!ok) {
        snprintf(why, why_bytes, "%s at byte %zu of %zu", c.error, c.error_at, len);
        return false;
    }
    root->at = start;
    root->end = end;
    return true;
}

/* ─── lookups (on checked text; still bounded by the span) ──────────────────── */

bool gvc_json_member(const char *text, gvc_span object, const char *key, gvc_span *value) {
    if (object.at >= object.end || text[object.at] != '{') return false;
    cursor c = {text, object.end, object.at + 1, NULL, 0};
    bool found = false;
    skip_space(&c);
    while (c.at < c.len && !peek(&c, '}')) {
        gvc_span name = {c.at, 0};
        if (!scan_string(&c)) return false;
        name.end = c.at;
        skip_space(&c);
        if (!peek(&c, ':')) return false;
        c.at++;
        skip_space(&c);
        gvc_span item = {c.at, 0};
        if (!scan_value(&c, 0)) return false;
        item.end = c.at;
        char decoded[128];
        size_t bytes = 0;
        if (gvc_json_string(text, name, decoded, sizeof decoded, &bytes) && strcmp(decoded, key) == 0) {
            *value = item;
            found = true;
        }
        skip_space(&c);
        if (peek(&c, ',')) c.at++;
        skip_space(&c);
    }
    return found;
}

/* Walks an array's items: the span of item `index`, and how many there are. */
static size_t walk_items(const char *text, gvc_span array, size_t index, gvc_span *value) {
    if (array.at >= array.end || text[array.at] != '[') return 0;
    cursor c = {text, array.end, array.at + 1, NULL, 0};
    size_t count = 0;
    skip_space(&c);
    while (c.at < c.len && !peek(&c, ']')) {
        gvc_span item = {c.at, 0};
        if (!scan_value(&c, 0)) return count;
        item.end = c.at;
        if (count == index && value != NULL) *value = item;
        count++;
        skip_space(&c);
        if (peek(&c, ',')) c.at++;
        skip_space(&c);
    }
    return count;
}

size_t gvc_json_length(const char *text, gvc_span array) { return walk_items(text, array, SIZE_MAX, NULL); }

bool gvc_json_item(const char *text, gvc_span array, size_t index, gvc_span *value) {
    return walk_items(text, array, index, value) > index;
}

/* ─── values ────────────────────────────────────────────────────────────────── */

/* Decodes a string value into out (when out is not NULL, up to cap bytes); *bytes gets the decoded length. */
static bool decode_string(const char *text, gvc_span value, char *out, size_t cap, size_t *bytes) {
    if (value.end - value.at < 2 || text[value.at] != '"' || text[value.end - 1] != '"') return false;
    size_t n = 0;
    for (size_t p = value.at + 1; p < value.end - 1;) {
        uint32_t cp = (unsigned char)text[p];
        if (cp != '\\') {
            if (out != NULL && n < cap) out[n] = (char)cp;
            n++;
            p++;
            continue;
        }
        char escape = text[p + 1];
        p += 2;
        if (escape != 'u') {
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = strchr(from, escape);
            if (hit == NULL || escape == '\0') return false;
            if (out != NULL && n < cap) out[n] = to[hit - from];
            n++;
            continue;
        }
        if (p + 4 > value.end - 1) return false;
        cp = 0;
        for (int i = 0; i < 4; i++) cp = cp << 4 | (uint32_t)hex_digit(text[p + i]);
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && p + 6 <= value.end - 1 && text[p] == '\\' && text[p + 1] == 'u') {
            uint32_t low = 0;
            for (int i = 0; i < 4; i++) low = low << 4 | (uint32_t)hex_digit(text[p + 2 + i]);
            if (low >= 0xDC00 && low <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* a lone surrogate */
        if (cp == 0) return false;               /* a NUL would cut the C string short */
        char utf8[4];
        int k = cp < 0x80 ? (utf8[0] = (char)cp, 1)
                : cp < 0x800 ? (utf8[0] = (char)(0xC0 | cp >> 6), utf8[1] = (char)(0x80 | (cp & 0x3F)), 2)
                : cp < 0x10000 ? (utf8[0] = (char)(0xE0 | cp >> 12), utf8[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), utf8[2] = (char)(0x80 | (cp & 0x3F)), 3)
                               : (utf8[0] = (char)(0xF0 | cp >> 18), utf8[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
                                  utf8[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), utf8[3] = (char)(0x80 | (cp & 0x3F)), 4);
        for (int i = 0; i < k; i++, n++)
            if (out != NULL && n < cap) out[n] = utf8[i];
    }
    *bytes = n;
    return true;
}

bool gvc_json_string(const char *text, gvc_span value, char *out, size_t cap, size_t *bytes) {
    size_t n = 0;
    if (cap == 0 || !decode_string(text, value, out, cap, &n) || n >= cap) return false;
    if (memchr(out, '\0', n) != NULL) return false;
    out[n] = '\0';
    *bytes = n;
    return true;
}

bool gvc_json_string_bytes(const char *text, gvc_span value, size_t *bytes) { return decode_string(text, value, NULL, 0, bytes); }

bool gvc_json_int(const char *text, gvc_span value, int64_t *out) {
    size_t p = value.at;
    bool negative = p < value.end && text[p] == '-';
    if (negative) p++;
    if (p >= value.end) return false;
    uint64_t magnitude = 0;
    for (; p < value.end; p++) {
        char ch = text[p];
        if (ch < '0' || ch > '9') return false;
        if (magnitude > (UINT64_C(1) << 63) / 10) return false;
        magnitude = magnitude * 10 + (uint64_t)(ch - '0');
    }
    if (magnitude > (negative ? (UINT64_C(1) << 63) : (uint64_t)INT64_MAX)) return false;
    *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return true;
}

bool gvc_json_bool(const char *text, gvc_span value, bool *out) {
    size_t n = value.end - value.at;
    if (n == 4 && memcmp(text + value.at, "true", 4) == 0) return *out = true, true;
    if (n == 5 && memcmp(text + value.at, "false", 5) == 0) return *out = false, true;
    return false;
}

bool gvc_json_is_null(const char *text, gvc_span value) { return value.end - value.at == 4 && memcmp(text + value.at, "null", 4) == 0; }
