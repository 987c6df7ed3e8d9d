/*
 * table.cu — the tensor table of an attach reply (its layout is
 * src/serve/protocol.ts's): a header, one record per device part, one per
 * tensor with its name. Every count is checked against the bytes before
 * anything is allocated for it, every sum against overflow, every tensor
 * against its part, so a hostile table is refused before a byte is mapped.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define TABLE_MAGIC 0x54545647u /* "GVTT" */
#define TABLE_VERSION 1u
#define HEADER_BYTES 16u
#define PART_BYTES 24u
#define TENSOR_BYTES 80u
#define TENSOR_ALIAS 1u

static uint32_t u32_at(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64_at(const uint8_t *p) { return (uint64_t)u32_at(p) | (uint64_t)u32_at(p + 4) << 32; }

static int malformed(const char *why, uint64_t index) {
    return gvc_fail(GVC_ERR_PROTOCOL, "gvc_attach: the server's tensor table is malformed: %s (record %llu)", why, (unsigned long long)index);
}

static int read_parts(gvc_attachment *a, const uint8_t *table, uint32_t n_parts, uint32_t n_fds) {
    a->parts = (gvc_part *)calloc(n_parts, sizeof(gvc_part));
    if (a->parts == NULL) return gvc_fail(GVC_ERR_HOST_MEMORY, "gvc_attach: malloc of %u parts failed", n_parts);
    a->n_parts = (int)n_parts;
    for (uint32_t i = 0; i < n_parts; i++) {
        const uint8_t *p = table + HEADER_BYTES + (uint64_t)i * PART_BYTES;
        gvc_part *part = &a->parts[i];
        int32_t device = (int32_t)u32_at(p);
        part->descriptor = u32_at(p + 4);
        part->alloc_bytes = u64_at(p + 8);
        part->bytes = u64_at(p + 16);
        if (device < 0 || device > 1023) return malformed("a part's device is not 0..1023", i);
        part->device = device;
        if (part->descriptor >= n_fds) return malformed("a part names a descriptor the reply did not carry", i);
        for (uint32_t j = 0; j < i; j++)
            if (a->parts[j].descriptor == part->descriptor) return malformed("two parts name the same descriptor", i);
        if (part->bytes == 0 || part->alloc_bytes < part->bytes) return malformed("a part's size is 0 or larger than its allocation", i);
    }
    return GVC_OK;
}

int gvc_read_table(gvc_attachment *a, const uint8_t *table, uint64_t bytes, uint32_t n_fds) {
    if (bytes < HEADER_BYTES || u32_at(table) != TABLE_MAGIC || u32_at(table + 4) != TABLE_VERSION)
        return malformed("no \"GVTT\" version 1 header", 0);
    uint32_t n_parts = u32_at(table + 8), n_tensors = u32_at(table + 12);
    if (n_parts == 0 || n_parts > GV_WIRE_MAX_FDS) return malformed("a model of 0 parts or more than 64", 0);
    uint64_t at = HEADER_BYTES + (uint64_t)n_parts * PART_BYTES;
    if (at > bytes) return malformed("more parts than the table holds", 0);
    if (n_tensors > INT_MAX || n_tensors > (bytes - at) / TENSOR_BYTES) return malformed("more tensors than the table holds", 0);
    int rc = read_parts(a, table, n_parts, n_fds);
    if (rc != GVC_OK) return rc;

    a->tensors = (gvc_tensor *)calloc(n_tensors ? n_tensors : 1, sizeof(gvc_tensor));
    a->tensor_parts = (int *)calloc(n_tensors ? n_tensors : 1, sizeof(int));
    a->names = (char *)malloc(bytes - at + 1); /* each name and its NUL fit in its record's 80 bytes and padding */
    if (a->tensors == NULL || a->tensor_parts == NULL || a->names == NULL) return gvc_fail(GVC_ERR_HOST_MEMORY, "gvc_attach: malloc for %u tensors failed", n_tensors);
    uint64_t names_at = 0;
    for (uint32_t i = 0; i < n_tensors; i++) {
        if (bytes - at < TENSOR_BYTES) return malformed("a tensor runs past the end of the table", i);
        const uint8_t *p = table + at;
        uint32_t part = u32_at(p), type = u32_at(p + 4), dims = u32_at(p + 8), name_bytes = u32_at(p + 12);
        uint64_t offset = u64_at(p + 48), size = u64_at(p + 56);
        if (part >= n_parts) return malformed("a tensor's part does not exist", i);
        if (dims < 1 || dims > 4) return malformed("a tensor has not 1 to 4 dimensions", i);
        if (type > INT_MAX) return malformed("a tensor's ggml type is out of range", i);
        if (name_bytes == 0 || name_bytes > bytes - at - TENSOR_BYTES) return malformed("a tensor's name is empty or runs past the table", i);
        if (memchr(p + TENSOR_BYTES, '\0', name_bytes) != NULL) return malformed("a tensor's name holds a NUL byte", i);
        if (offset > a->parts[part].bytes || size > a->parts[part].bytes - offset) return malformed("a tensor lies outside its part", i);
        gvc_tensor *t = &a->tensors[i];
        for (uint32_t d = 0; d < 4; d++) {
            uint64_t ne = d < dims ? u64_at(p + 16 + 8 * d) : 1;
            if (ne > (uint64_t)INT64_MAX) return malformed("a tensor's dimension is out of range", i);
            t->ne[d] = (int64_t)ne;
        }
        t->ggml_type = (int)type;
        t->n_dims = (int)dims;
        t->device = a->parts[part].device;
        a->tensor_parts[i] = (int)part;
        t->data = (void *)(uintptr_t)offset; /* an offset until the part is mapped */
        t->bytes = size;
        t->file_offset = u64_at(p + 64);
        uint32_t shard = u32_at(p + 72);
        if (shard > INT_MAX) return malformed("a tensor's shard is out of range", i);
        t->shard = (int)shard;
        t->alias = (u32_at(p + 76) & TENSOR_ALIAS) ? 1 : 0;
        memcpy(a->names + names_at, p + TENSOR_BYTES, name_bytes);
        a->names[names_at + name_bytes] = '\0';
        t->name = a->names + names_at;
        names_at += name_bytes + 1;
        uint64_t padded = ((uint64_t)name_bytes + 7) & ~(uint64_t)7;
        if (padded > bytes - at - TENSOR_BYTES) return malformed("a tensor's name padding runs past the table", i);
        at += TENSOR_BYTES + padded;
        a->n_tensors = (int)(i + 1);
    }
    if (at != bytes) return malformed("bytes follow the last tensor", n_tensors);
    return GVC_OK;
}
