/*
 * model/export.h - a growing list of named float32 tensors that a tower's
 * export hook fills (see mc_model_export in model.h): the weights as the
 * engine holds them, under the names its loader reads back.
 */
#ifndef MC_MODEL_EXPORT_H
#define MC_MODEL_EXPORT_H

#include "io/safetensors.h"
#include "kernels/types.h"

/* A growing list of named float32 tensors that a tower's export hook fills
 * (see mc_model_export).  Errors are sticky: after the first, adds do nothing. */
typedef struct mc_export mc_export;

/* Adds a tensor whose data lives in the model (not copied). */
void mc_export_add(mc_export *ex, const float *data, int ndim, const int64_t *shape, const char *fmt, ...)
    MC_PRINTF(5, 6);
/* Adds a tensor held by the export (e.g. a transposed copy): returns its zeroed
 * buffer of prod(shape) floats to fill, or NULL after an error. */
float *mc_export_add_new(mc_export *ex, int ndim, const int64_t *shape, const char *fmt, ...) MC_PRINTF(4, 5);
/* A weight matrix that may be held only as q's pre-packed copy (w NULL; see
 * mc_lower_mat): with w, mc_export_add; otherwise the matrix unpacked, exactly,
 * into a tensor held by the export.  shape's product is q's rows x cols. */
void mc_export_add_w(mc_export *ex, const float *w, const mc_qmat *q, int ndim, const int64_t *shape,
                     const char *fmt, ...) MC_PRINTF(6, 7);
/* w, or q's packed copy unpacked into [q->rows, q->cols] floats that live
 * until the export ends (for hooks that rearrange a matrix); NULL after an error. */
const float *mc_export_mat(mc_export *ex, const float *w, const mc_qmat *q);

/* A new, empty list; errors of later calls go to err.  NULL: out of memory. */
mc_export *mc_export_new(mc_error *err);
/* The list as safetensors entries, in one malloc'd block (the caller frees
 * *entries only): names and held tensors are copied into it, other data
 * points into the model.  Returns the first error of the adds, if any. */
mc_status mc_export_pack(mc_export *ex, mc_st_entry **entries, size_t *n);
void mc_export_free(mc_export *ex);

#endif /* MC_MODEL_EXPORT_H */
