/*
 * io/ckpt_open.c - opening a checkpoint from a file (memory-mapped) or from
 * a buffer, deciding its format by content and running that format's reader.
 */
#include "io/ckpt_open.h"
#include "io/safetensors.h"
#include "io/torchzip.h"

#include <stdlib.h>
#include <string.h>

/* Runs the reader that ckpt->map's first bytes call for; what names the
 * source in the message for content of no known format ("file", "buffer"). */
static mc_status parse_by_content(mc_checkpoint *ckpt, const char *what, mc_error *err) {
    const uint8_t *d = ckpt->map.data;
    size_t n = ckpt->map.size;
    const char *name = ckpt->path;
    if (n >= 4 && d[0] == 'P' && d[1] == 'K' && d[2] == 3 && d[3] == 4) {
        ckpt->format = MC_FORMAT_TORCH_ZIP;
        return mc_torchzip_parse(ckpt, err);
    }
    if (n >= 9 && d[8] == '{') {
        ckpt->format = MC_FORMAT_SAFETENSORS;
        return mc_safetensors_parse(ckpt, err);
    }
    if (n >= 2 && d[0] == 0x80)
        return mc_fail(err, MC_ERR_UNSUPPORTED,
                       "%s: legacy (non-zip) torch.save format; re-save it with PyTorch >= 1.6", name);
    return mc_fail(err, MC_ERR_FORMAT, "%s: neither a torch.save zip nor a safetensors %s", name, what);
}

/* A new, empty checkpoint named name, or NULL (out of memory). */
static mc_checkpoint *ckpt_new(const char *name) {
    mc_checkpoint *ckpt = calloc(1, sizeof *ckpt);
    if (ckpt && !(ckpt->path = strdup(name))) {
        free(ckpt);
        ckpt = NULL;
    }
    return ckpt;
}

mc_status mc_checkpoint_open(const char *path, mc_checkpoint **out, mc_error *err) {
    *out = NULL;
    if (!path) return mc_fail(err, MC_ERR_INVALID_ARG, "checkpoint path is NULL");
    mc_checkpoint *ckpt = ckpt_new(path);
    if (!ckpt) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
    mc_status st = mc_file_map_open(path, &ckpt->map, err);
    if (st == MC_OK) st = parse_by_content(ckpt, "file", err);
    if (st != MC_OK) { mc_checkpoint_close(ckpt); return st; }
    *out = ckpt;
    return MC_OK;
}

mc_status mc_checkpoint_open_memory(const void *data, size_t len, const char *name,
                                    mc_checkpoint **out, mc_error *err) {
    *out = NULL;
    if (!data && len) return mc_fail(err, MC_ERR_INVALID_ARG, "checkpoint buffer is NULL");
    if (!name) name = "<memory>";
    mc_checkpoint *ckpt = ckpt_new(name);
    if (!ckpt) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", name);
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) { mc_checkpoint_close(ckpt); return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", name); }
    if (len) memcpy(copy, data, len);
    mc_status st = mc_checkpoint_own(ckpt, copy, err);
    if (st != MC_OK) { mc_checkpoint_close(ckpt); return st; }
    ckpt->map.data = copy;
    ckpt->map.size = len;
    ckpt->map.mapped = 0; /* freed as an owned buffer */
    st = parse_by_content(ckpt, "buffer", err);
    if (st != MC_OK) { mc_checkpoint_close(ckpt); return st; }
    *out = ckpt;
    return MC_OK;
}
