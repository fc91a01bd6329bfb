/*
 * kernels/types.h - the types every kernel takes: activations, convolution
 * shapes and weight matrices held in reduced precision (or pre-packed).
 *
 * Layouts: feature maps are NCHW float32; sequences are [rows, dim] row-major.
 * Linear weights are [out, in] (PyTorch nn.Linear); conv weights are
 * [cout, cin/groups, kh, kw] (PyTorch nn.Conv2d).
 */
#ifndef MC_KERNELS_TYPES_H
#define MC_KERNELS_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef enum mc_act {
    MC_ACT_NONE = 0,
    MC_ACT_RELU,
    MC_ACT_GELU,        /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
    MC_ACT_GELU_TANH,   /* tanh approximation */
    MC_ACT_QUICK_GELU,  /* x sigmoid(1.702 x) */
    MC_ACT_SIGMOID
} mc_act;

typedef struct mc_conv2d_desc {
    int cin, cout;
    int kh, kw;
    int sh, sw;     /* stride */
    int ph, pw;     /* zero padding */
    int groups;
} mc_conv2d_desc;

static inline int mc_conv_out(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* ---- reduced-precision weight matrices (docs/performance.md, "Reduced precision") ----
 * A weight matrix [rows, cols] may be held as bf16, f16 or int8 with one
 * symmetric scale per row (per output channel); the kernels below convert it
 * to float32 while packing GEMM panels, so all arithmetic stays float32. */
typedef enum mc_wtype { MC_WT_F32 = 0, MC_WT_BF16, MC_WT_F16, MC_WT_I8, MC_WT_COUNT } mc_wtype;

typedef struct mc_qmat {
    mc_wtype type;          /* MC_WT_F32: none (the float32 weights are used) */
    int64_t rows, cols;
    const void *data;       /* [rows, cols] row-major: uint16 bits (bf16, f16) or int8;
                             * float32: the plain matrix, or NULL when only packed */
    const float *scale;     /* MC_WT_I8: [rows], value = q * scale[row]; else NULL */
    /* Pre-packed float32 copy in the GEMM's panel layout (mc_qmat_pack), or
     * NULL.  For each K block p0 = 0, kc, 2 kc, .. (kc = pk_kc) it holds
     * rows padded to a multiple of pk_r in pk_r-row panels, each panel
     * k-major (pk_r values per k step, zero padded): element (r, p) sits at
     * p0 * Rp + (r / pk_r) * pk_r * kb + (p - p0) * pk_r + r % pk_r, with Rp the
     * padded row count and kb that block's width.  pk_b: packed for the B
     * operand of a linear layer (pk_r = NR), else for the A of a conv (MR). */
    const float *packed;
    int pk_r, pk_kc, pk_b;
} mc_qmat;

/* Address of element (r, c) of q's data. */
static inline const void *mc_qmat_at(const mc_qmat *q, int64_t r, int64_t c) {
    size_t es = q->type == MC_WT_I8 ? 1 : q->type == MC_WT_F32 ? 4 : 2;
    return (const char *)q->data + ((size_t)r * (size_t)q->cols + (size_t)c) * es;
}

#endif /* MC_KERNELS_TYPES_H */
