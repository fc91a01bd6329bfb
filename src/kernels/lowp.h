/*
 * kernels/lowp.h - reduced-precision weights: quantizing a float32 matrix
 * into an mc_qmat, reading its rows, and the load-time pass that replaces a
 * tower's big matrices by their reduced copies (mc_lower).  The kernels
 * that compute with an mc_qmat are in kernels.h.
 */
#ifndef MC_LOWP_H
#define MC_LOWP_H

#include "core/arena.h"
#include "kernels/types.h"

/* Elements of one row of q converted to float32 with the kernel set in use:
 * dst[j] = q[r, c0 + j], j < n (reference: mc_qmat_row_ref, qmat.h). */
void mc_qmat_row(const mc_qmat *q, int64_t r, int64_t c0, int n, float *dst);

/* Bytes per element of a weight type. */
size_t mc_wtype_size(mc_wtype t);
/* "f32", "bf16", "f16", "int8". */
const char *mc_wtype_name(mc_wtype t);

/* Quantizes w[rows, cols] into out (data and scales allocated in a).  int8:
 * scale[r] = max |w[r, :]| / 127, q = round(w / scale) (a zero row: scale 0);
 * f16 saturates at +-65504; bf16 and f16 round to nearest even.
 * Returns 0 when memory runs out. */
int mc_qmat_make(mc_arena *a, mc_wtype t, const float *w, int64_t rows, int64_t cols, mc_qmat *out);

/* The load-time pass.  A tower's lower hook calls mc_lower_mat for each big
 * matrix; errors are sticky. */
typedef struct mc_lower {
    mc_arena *arena;      /* where the reduced copies go (the model's arena) */
    mc_wtype type;
    int pack;             /* type f32: pre-pack GEMM weights for the kernel set in use */
    mc_error *err;
    mc_status status;
    int64_t n_mats;
    size_t bytes_f32, bytes_lowp;   /* of the matrices replaced */
    size_t bytes_packed;            /* pre-packed copies */
} mc_lower;

/* How a matrix is used: a linear layer's weight (B^T of its GEMM), a conv's
 * weight (the A of its GEMM), or neither (an embedding table: never packed). */
enum { MC_USE_LINEAR, MC_USE_CONV, MC_USE_TABLE };

/* Quantizes w[rows, cols] (float32 in L->arena) into *q, or for a float32
 * model (L->pack) makes *q its pre-packed copy (q->data NULL), and gives the
 * pages of w back to the system (mc_arena_release), so each matrix is held
 * once.  Returns 1 when w was replaced (the caller then sets its pointer to
 * NULL), 0 when w stays (an embedding table, packing off, no memory for the
 * copy, or an error). */
int mc_lower_mat(mc_lower *L, const float *w, int64_t rows, int64_t cols, int use, mc_qmat *q);

/* mc_lower_mat for a pointer field: nulls it once replaced (then q holds the
 * weights, reduced or pre-packed; the kernels and export read them from q). */
#define MC_LOWER_AS(L, field, rows, cols, qfield, use)                                 \
    do {                                                                               \
        if ((field) && mc_lower_mat((L), (field), (rows), (cols), (use), &(qfield)))   \
            (field) = NULL;                                                            \
    } while (0)
#define MC_LOWER(L, field, rows, cols, qfield) MC_LOWER_AS(L, field, rows, cols, qfield, MC_USE_LINEAR)

#endif /* MC_LOWP_H */
