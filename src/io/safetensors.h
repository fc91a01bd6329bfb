/*
 * io/safetensors.h - the safetensors reader and writer.
 */
#ifndef MC_IO_SAFETENSORS_H
#define MC_IO_SAFETENSORS_H

#include "io/checkpoint.h"

/* Reads the tensor table of ckpt->map (a safetensors file) into ckpt. */
mc_status mc_safetensors_parse(mc_checkpoint *ckpt, mc_error *err);

/* safetensors writer: tensors given as name/dtype/shape/data. */
typedef struct mc_st_entry {
    const char *name;
    mc_dtype dtype;
    int ndim;
    int64_t shape[MC_MAX_DIMS];
    const void *data;
} mc_st_entry;
mc_status mc_safetensors_write(const char *path, const mc_st_entry *entries, size_t n,
                               const mc_meta_kv *meta, size_t n_meta, mc_error *err);

#endif /* MC_IO_SAFETENSORS_H */
