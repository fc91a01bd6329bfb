/*
 * kernels.h - the numeric kernels every model block is built from.
 *
 * Each kernel has a plain scalar reference version (kernels_ref.c, suffix
 * _ref) that is the oracle for its fast versions (SIMD, threaded).  The
 * unsuffixed entry points dispatch to the fastest version the CPU supports;
 * tests compare the two on odd sizes.
 *
 * Layouts: feature maps are NCHW float32; sequences are [rows, dim] row-major.
 * Linear weights are [out, in] (PyTorch nn.Linear); conv weights are
 * [cout, cin/groups, kh, kw] (PyTorch nn.Conv2d).
 */
#ifndef MC_KERNELS_H
#define MC_KERNELS_H

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

/* Applies act to x[0..n) in place. */
void mc_act_apply(float *x, size_t n, mc_act act);
void mc_act_apply_ref(float *x, size_t n, mc_act act);

/* y[m, n] = act(x[m, k] . w[n, k]^T + b[n]);  b may be NULL. */
void mc_linear(const float *x, const float *w, const float *b, int m, int k, int n, float *y, mc_act act);
void mc_linear_ref(const float *x, const float *w, const float *b, int m, int k, int n, float *y, mc_act act);

/* y[m, n] += x[m, k] . w[n, k]^T + b[n] (a residual add fused into the GEMM);  b may be NULL. */
void mc_linear_add(const float *x, const float *w, const float *b, int m, int k, int n, float *y);
void mc_linear_add_ref(const float *x, const float *w, const float *b, int m, int k, int n, float *y);

/* 1x1 convolution added to a residual, per image of NCHW maps:
 * y[i, cout, hw] += w[cout, cin] . x[i, cin, hw] + b[cout];  b may be NULL. */
void mc_pointwise_add(const float *w, const float *b, const float *x, int n, int cin, int cout,
                      int hw, float *y);
void mc_pointwise_add_ref(const float *w, const float *b, const float *x, int n, int cin, int cout,
                          int hw, float *y);

/* c[m, n] = alpha * op(a) . op(b) + beta * c, row-major with leading dimensions;
 * op(a) = a[m, k] (ta = 0) or a[k, m]^T (ta = 1); op(b) = b[k, n] or b[n, k]^T. */
void mc_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);
void mc_gemm_ref(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);

/* y[n, cout, oh, ow] = act(conv(x[n, cin, h, w], w) + b);  b may be NULL. */
void mc_conv2d(const mc_conv2d_desc *d, const float *w, const float *b, const float *x, int n,
               int h, int wd, float *y, mc_act act);
void mc_conv2d_ref(const mc_conv2d_desc *d, const float *w, const float *b, const float *x, int n,
                   int h, int wd, float *y, mc_act act);

/* LayerNorm over the last dim of x[rows, dim]; g, b may be NULL (no affine). */
void mc_layernorm(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                  float *y);
void mc_layernorm_ref(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                      float *y);
/* The same, also giving each row's mean and 1/std (mean_out, rstd_out: [rows] or NULL);
 * the training forward's oracle saves them for the backward. */
void mc_layernorm_stats_ref(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                            float *y, float *mean_out, float *rstd_out);

/* LayerNorm over channels of NCHW x (timm LayerNorm2d): per (n, h, w). */
void mc_layernorm_nchw(const float *x, int n, int c, int hw, const float *g, const float *b,
                       float eps, float *y);
void mc_layernorm_nchw_ref(const float *x, int n, int c, int hw, const float *g, const float *b,
                           float eps, float *y);

/* Softmax over each row of x[rows, cols] in place. */
void mc_softmax_rows(float *x, int rows, int cols);
void mc_softmax_rows_ref(float *x, int rows, int cols);

/* Multi-head scaled dot-product attention for one sequence.
 * q, k, v: [t, heads * hd] with row stride ld (elements); out: [t, heads * hd]
 * (row stride heads * hd).  causal: position i attends to j <= i.
 * scratch: at least t * t floats. */
void mc_attention(const float *q, const float *k, const float *v, int ld, int t, int heads, int hd,
                  int causal, float *out, float *scratch);
void mc_attention_ref(const float *q, const float *k, const float *v, int ld, int t, int heads,
                      int hd, int causal, float *out, float *scratch);

/* mc_attention over nseq sequences stored one after another: sequence s
 * reads q, k, v + s t ld and writes out + s t heads hd.  The (sequence, head)
 * pairs run on separate threads; score scratch is thread-local. */
void mc_attention_batch(const float *q, const float *k, const float *v, int ld, int nseq, int t,
                        int heads, int hd, int causal, float *out);

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

/* Elements of one row of q converted to float32: dst[j] = q[r, c0 + j], j < n. */
void mc_qmat_row(const mc_qmat *q, int64_t r, int64_t c0, int n, float *dst);
void mc_qmat_row_ref(const mc_qmat *q, int64_t r, int64_t c0, int n, float *dst);

/* The kernels above with the weights taken from q when q is non-NULL and its
 * type is not MC_WT_F32 (w is then ignored and may be NULL); otherwise exactly
 * the float32 kernels on w.  A float32 q with a packed copy stands for w:
 * its panels are read in place when they fit the kernel set in use, and when
 * w is NULL (the weights held only packed) values come from the copy for any
 * kernel set, with the same results as on w.  For mc_conv2d_q, q holds w as
 * [cout, cin/groups kh kw] and is used only by dense or grouped convs
 * (cin/groups > 1). */
void mc_linear_q(const float *x, const float *w, const mc_qmat *q, const float *b, int m, int k, int n,
                 float *y, mc_act act);
void mc_linear_add_q(const float *x, const float *w, const mc_qmat *q, const float *b, int m, int k,
                     int n, float *y);
void mc_pointwise_add_q(const float *w, const mc_qmat *q, const float *b, const float *x, int n, int cin,
                        int cout, int hw, float *y);
void mc_conv2d_q(const mc_conv2d_desc *d, const float *w, const mc_qmat *q, const float *b,
                 const float *x, int n, int h, int wd, float *y, mc_act act);

/* Kernel set in use ("scalar", "avx2", "avx512", "neon"), chosen once at first use. */
const char *mc_kernels_name(void);
/* Thread count used by the kernels (0 = one per core). */
void mc_kernels_set_threads(int n);
int mc_kernels_get_threads(void);
/* Thread count for kernels called from the calling thread only, overriding
 * the process-wide one (0 = one per core, -1 = no override); returns the
 * previous override.  Contexts set it around each forward pass. */
int mc_kernels_set_local_threads(int n);
/* Threads a kernel called here would use at most (1 inside a parallel region). */
int mc_kernels_threads_avail(void);

#endif /* MC_KERNELS_H */
