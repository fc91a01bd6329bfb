/*
 * io/checkpoint.h - the inside of an mc_checkpoint (the public type of
 * mobileclip.h): the tensor table, the buffers it owns and its metadata,
 * filled by the format readers (safetensors.h, torchzip.h).
 */
#ifndef MC_IO_CHECKPOINT_H
#define MC_IO_CHECKPOINT_H

#include "core/core.h"

typedef struct mc_meta_kv {
    char *key;
    char *value;
} mc_meta_kv;

struct mc_checkpoint {
    char *path;
    mc_file_format format;
    mc_file_map map;          /* the file's bytes */
    mc_tensor_info *tensors;  /* names and copies owned by the checkpoint */
    size_t n_tensors;
    size_t cap_tensors;
    void **owned;             /* buffers to free (names, de-strided copies) */
    size_t n_owned;
    size_t cap_owned;
    mc_meta_kv *meta;
    size_t n_meta;
};

/* Adds a tensor (name copied); data must stay valid while ckpt is open. */
mc_status mc_checkpoint_add(mc_checkpoint *ckpt, const char *name, mc_dtype dtype, int ndim,
                            const int64_t *shape, const void *data, size_t nbytes, mc_error *err);
/* Records a malloc'd buffer that the checkpoint frees on close. */
mc_status mc_checkpoint_own(mc_checkpoint *ckpt, void *buf, mc_error *err);

#endif /* MC_IO_CHECKPOINT_H */
