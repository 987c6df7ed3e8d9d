/*
 * attach.cu — attaching to a resident model: the attach request, its reply
 * (model, attachment id, tensor table, one descriptor per device part), each
 * part mapped with CUDA virtual memory (vmm.cu), and detaching again.
 *
 * Once the server has said yes it counts this connection as a holder, so any
 * failure after that (a malformed table, a mapping that fails) sends the
 * detach before returning: a failed attach holds nothing on either side.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime.h>

#include "client.h"

/* ─── freeing ───────────────────────────────────────────────────────────────── */

/* Unmaps what is mapped (after the device's work is done: a kernel may still read it); the first failure counts. */
static int unmap_parts(gvc_attachment *a) {
    int rc = GVC_OK, current = -1;
    bool restore = cudaGetDevice(&current) == cudaSuccess;
    for (int i = 0; i < a->n_parts; i++) {
        gvc_part *part = &a->parts[i];
        if (part->mapping.ptr == 0) continue;
        cudaError_t err = cudaSetDevice(part->device);
        if (err == cudaSuccess) err = cudaDeviceSynchronize();
        if (err != cudaSuccess && rc == GVC_OK)
            rc = gvc_fail(GVC_ERR_CUDA, "gvc_detach: waiting for device %d before unmapping failed: %s", part->device, cudaGetErrorString(err));
        const char *failed = "";
        CUresult vrc = gv_vmm_unmap(&part->mapping, &failed);
        if (vrc != CUDA_SUCCESS && rc == GVC_OK)
            rc = gvc_fail(GVC_ERR_CUDA, "gvc_detach: %s on device %d failed: %s (CUresult %d)", failed, part->device, gv_vmm_error_string(vrc), (int)vrc);
    }
    if (restore) cudaSetDevice(current);
    cudaGetLastError();
    return rc;
}

static void free_attachment(gvc_attachment *a) {
    for (int i = 0; i < a->n_files; i++) free(a->files[i]);
    free(a->files);
    free(a->parts);
    free(a->tensors);
    free(a->tensor_parts);
    free(a->names);
    free(a);
}

/* Tells the server this attachment is over; a closed connection is no failure (the server let go already). */
static int send_detach(gvc_conn *conn, const char *attachment_id) {
    if (conn == NULL || conn->broken) return GVC_OK;
    char escaped[6 * sizeof ((gvc_attachment *)0)->attachment_id + 8], fields[sizeof escaped + 48];
    gvc_json_escape(attachment_id, escaped, sizeof escaped);
    snprintf(fields, sizeof fields, "\"op\":\"detach\",\"attachment\":\"%s\"", escaped);
    gvc_reply reply;
    int rc = gvc_call(conn, "gvc_detach", fields, -1, &reply);
    gvc_reply_free(&reply);
    return rc == GVC_ERR_DISCONNECTED || rc == GVC_ERR_SOCKET ? GVC_OK : rc;
}

/* The attach failed after the server said yes: undo both sides, keeping the failure's message. */
static int abandon(gvc_conn *conn, gvc_attachment *a, int rc) {
    gvc_saved_error saved;
    gvc_save_error(&saved);
    unmap_parts(a);
    if (a->attachment_id[0] != '\0') send_detach(conn, a->attachment_id);
    free_attachment(a);
    gvc_restore_error(&saved);
    return rc;
}

/* ─── the reply ─────────────────────────────────────────────────────────────── */

static char *decoded_copy(const char *json, gvc_span value) {
    size_t bytes = 0;
    if (!gvc_json_string_bytes(json, value, &bytes) || bytes > PATH_MAX) return NULL;
    char *copy = (char *)malloc(bytes + 1);
    if (copy != NULL && !gvc_json_string(json, value, copy, bytes + 1, &bytes)) {
        free(copy);
        return NULL;
    }
    return copy;
}

/* The attachment id, the model's id and its files, from the reply's JSON. */
static int read_reply_fields(gvc_attachment *a, const gvc_reply *reply) {
    const char *json = reply->frame->json;
    gvc_span value, model, files;
    size_t bytes = 0;
    if (!gvc_json_member(json, reply->root, "attachment", &value) || !gvc_json_string(json, value, a->attachment_id, sizeof a->attachment_id, &bytes) || bytes == 0)
        return gvc_fail(GVC_ERR_PROTOCOL, "gvc_attach: the server's reply names no attachment");
    if (!gvc_json_member(json, reply->root, "model", &model) || !gvc_json_member(json, model, "id", &value) ||
        !gvc_json_string(json, value, a->model_id, sizeof a->model_id, &bytes) || bytes == 0)
        return gvc_fail(GVC_ERR_PROTOCOL, "gvc_attach: the server's reply names no model id");
    if (!gvc_json_member(json, model, "files", &files)) return GVC_OK; /* the files are a convenience; the tensors do not need them */
    size_t n = gvc_json_length(json, files);
    if (n > 4096) return gvc_fail(GVC_ERR_PROTOCOL, "gvc_attach: the server's reply lists %zu files", n);
    a->files = (char **)calloc(n ? n : 1, sizeof(char *));
    if (a->files == NULL) return gvc_fail(GVC_ERR_HOST_MEMORY, "gvc_attach: malloc failed");
    for (size_t i = 0; i < n; i++) {
        /* a file is {"path", "fileSize", "mtimeMs"}; a bare path string is read too */
        gvc_span path;
        bool found = gvc_json_item(json, files, i, &value);
        if (found && json[value.at] == '{') found = gvc_json_member(json, value, "path", &path);
        else path = value;
        if (!found || (a->files[i] = decoded_copy(json, path)) == NULL)
            return gvc_fail(GVC_ERR_PROTOCOL, "gvc_attach: file %zu of the server's reply has no path", i);
        a->n_files = (int)(i + 1);
    }
    return GVC_OK;
}

/* Maps each part's allocation on its device (the caller's current device is kept), then points the tensors into it. */
static int map_parts(gvc_attachment *a, const int *fds) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        cudaGetLastError();
        return gvc_fail(GVC_ERR_NO_DEVICE, "gvc_attach: this process sees no CUDA device: %s", err != cudaSuccess ? cudaGetErrorString(err) : "none");
    }
    int current = -1;
    bool restore = cudaGetDevice(&current) == cudaSuccess;
    int rc = GVC_OK;
    for (int i = 0; i < a->n_parts && rc == GVC_OK; i++) {
        gvc_part *part = &a->parts[i];
        if (part->device >= count) {
            rc = gvc_fail(GVC_ERR_CUDA, "gvc_attach: the model lives on the server's device %d, and this process sees %d device%s (are CUDA_VISIBLE_DEVICES the same?)",
                          part->device, count, count == 1 ? "" : "s");
            break;
        }
        err = cudaSetDevice(part->device); /* the primary context: the driver's calls below need one */
        if (err != cudaSuccess) {
            rc = gvc_fail(GVC_ERR_CUDA, "gvc_attach: cudaSetDevice(%d) failed: %s", part->device, cudaGetErrorString(err));
            break;
        }
        const char *failed = "";
        CUresult vrc = gv_vmm_import(fds[part->descriptor], part->alloc_bytes, part->device, &part->mapping, &failed);
        if (vrc != CUDA_SUCCESS)
            rc = gvc_fail(vrc == CUDA_ERROR_NO_DEVICE ? GVC_ERR_NO_DEVICE : GVC_ERR_CUDA, "gvc_attach: %s for the model's %.1f MiB on device %d failed: %s (CUresult %d)",
                          failed, (double)part->alloc_bytes / (1 << 20), part->device, gv_vmm_error_string(vrc), (int)vrc);
    }
    if (restore) cudaSetDevice(current);
    cudaGetLastError();
    if (rc != GVC_OK) return rc;
    for (int i = 0; i < a->n_tensors; i++) {
        gvc_tensor *t = &a->tensors[i];
        t->data = (void *)(uintptr_t)(a->parts[a->tensor_parts[i]].mapping.ptr + (uintptr_t)t->data);
    }
    return GVC_OK;
}

/* ─── API ───────────────────────────────────────────────────────────────────── */

/* What the server is asked for: a model id as it is, a path made absolute (its real path when it exists). */
static int model_argument(const char *model, char *out, size_t cap) {
    bool is_path = strchr(model, '/') != NULL || (strlen(model) > 5 && strcmp(model + strlen(model) - 5, ".gguf") == 0);
    char resolved[PATH_MAX];
    const char *chosen = model;
    if (is_path && realpath(model, resolved) != NULL) chosen = resolved;
    else if (is_path && model[0] != '/') {
        char here[PATH_MAX];
        if (getcwd(here, sizeof here) == NULL || snprintf(resolved, sizeof resolved, "%s/%s", here, model) >= (int)sizeof resolved)
            return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_attach: the path %s cannot be made absolute", model);
        chosen = resolved;
    }
    if (!gvc_json_escape(chosen, out, cap)) return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_attach: the model %s is too long", model);
    return GVC_OK;
}

extern "C" int gvc_attach(gvc_conn *conn, const char *model, gvc_attachment **out) {
    if (out != NULL) *out = NULL;
    if (conn == NULL || model == NULL || model[0] == '\0' || out == NULL)
        return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_attach: conn, model and out must not be NULL or empty");
    size_t cap = (strlen(model) + PATH_MAX) * 6 + 64;
    char *escaped = (char *)malloc(cap), *fields = (char *)malloc(cap + 48);
    int rc = escaped && fields ? model_argument(model, escaped, cap) : gvc_fail(GVC_ERR_HOST_MEMORY, "gvc_attach: malloc failed");
    if (rc == GVC_OK) snprintf(fields, cap + 48, "\"op\":\"attach\",\"model\":\"%s\"", escaped);
    gvc_reply reply = {};
    if (rc == GVC_OK) rc = gvc_call(conn, "gvc_attach", fields, -1, &reply);
    free(escaped);
    free(fields);
    if (rc != GVC_OK) {
        gvc_reply_free(&reply);
        return rc;
    }
    gvc_attachment *a = (gvc_attachment *)calloc(1, sizeof *a);
    if (a == NULL) {
        gvc_reply_free(&reply);
        return gvc_fail(GVC_ERR_HOST_MEMORY, "gvc_attach: malloc failed");
    }
    const gv_wire_frame *frame = reply.frame;
    rc = read_reply_fields(a, &reply);
    if (rc == GVC_OK) rc = gvc_read_table(a, frame->bin, frame->bin_bytes, frame->n_fds);
    for (int i = 0; rc == GVC_OK && i < a->n_tensors; i++)
        if (a->n_files > 0 && a->tensors[i].shard >= a->n_files)
            rc = gvc_fail(GVC_ERR_PROTOCOL, "gvc_attach: tensor %s is in shard %d of a model of %d files", a->tensors[i].name, a->tensors[i].shard, a->n_files);
    if (rc == GVC_OK) rc = map_parts(a, frame->fds);
    gvc_reply_free(&reply); /* closes the descriptors: the mappings hold the memory */
    if (rc != GVC_OK) return abandon(conn, a, rc);
    a->conn = conn;
    a->next_of_conn = conn->attachments;
    conn->attachments = a;
    *out = a;
    return GVC_OK;
}

extern "C" int gvc_detach(gvc_attachment *a) {
    if (a == NULL) return GVC_OK;
    int rc = unmap_parts(a);
    gvc_conn *conn = a->conn;
    if (conn != NULL) {
        for (gvc_attachment **link = &conn->attachments; *link != NULL; link = &(*link)->next_of_conn)
            if (*link == a) {
                *link = a->next_of_conn;
                break;
            }
        gvc_saved_error saved;
        gvc_save_error(&saved);
        int told = send_detach(conn, a->attachment_id);
        if (rc != GVC_OK) gvc_restore_error(&saved);
        else rc = told;
    }
    free_attachment(a);
    return rc;
}

extern "C" const char *gvc_model_id(const gvc_attachment *a) { return a ? a->model_id : NULL; }
extern "C" int gvc_tensor_count(const gvc_attachment *a) { return a ? a->n_tensors : 0; }
extern "C" const gvc_tensor *gvc_tensor_at(const gvc_attachment *a, int index) {
    return a && index >= 0 && index < a->n_tensors ? &a->tensors[index] : NULL;
}

extern "C" const gvc_tensor *gvc_find(const gvc_attachment *a, const char *name, int device) {
    if (a == NULL || name == NULL) return NULL;
    for (int i = 0; i < a->n_tensors; i++)
        if ((device < 0 || a->tensors[i].device == device) && strcmp(a->tensors[i].name, name) == 0) return &a->tensors[i];
    return NULL;
}

extern "C" int gvc_device_count(const gvc_attachment *a) { return a ? a->n_parts : 0; }

extern "C" int gvc_device_at(const gvc_attachment *a, int index, int *device, void **base, uint64_t *bytes) {
    if (a == NULL || index < 0 || index >= a->n_parts)
        return gvc_fail(GVC_ERR_INVALID_ARGUMENT, "gvc_device_at: index %d is outside the attachment's %d devices", index, a ? a->n_parts : 0);
    if (device) *device = a->parts[index].device;
    if (base) *base = (void *)(uintptr_t)a->parts[index].mapping.ptr;
    if (bytes) *bytes = a->parts[index].bytes;
    return GVC_OK;
}

extern "C" int gvc_model_file_count(const gvc_attachment *a) { return a ? a->n_files : 0; }
extern "C" const char *gvc_model_file(const gvc_attachment *a, int shard) {
    return a && shard >= 0 && shard < a->n_files ? a->files[shard] : NULL;
}
