/*
 * kernels/kset.h - a kernel set: the micro-kernel, packers and vector
 * helpers one instruction set provides (set_portable.c, set_avx2.c,
 * set_avx512.c, set_neon.c), with its cache blocking; and the geometry the
 * sets and their callers share.  The set in use comes from dispatch.h.
 */
#ifndef MC_KERNELS_KSET_H
#define MC_KERNELS_KSET_H

#include "kernels/types.h"

/* C[mr x nr tile] = alpha * A_panel . B_panel + beta * C (beta == 0: C not read).
 * a: kc x MR packed (MR values per k step), b: kc x NR packed. */
typedef void (*mc_ukr_fn)(int kc, const float *a, const float *b, float *c, size_t ldc,
                          float alpha, float beta);

/* Bias + activation over an mr x nr tile of c (row stride ldc): c[i][j] +=
 * brow[i] (if brow) + bcol[j] (if bcol), then act. */
typedef void (*mc_epi_fn)(float *c, size_t ldc, int mr, int nr, const float *brow,
                          const float *bcol, mc_act act);

/* Depthwise conv of one channel plane x[h, w] with kernel k[kh, kw] into
 * y[oh, ow], plus bias, then act.  scratch: mc_dw_scratch_floats() floats. */
typedef void (*mc_dw_fn)(const float *x, int h, int w, const float *k, const mc_conv2d_desc *d,
                         float bias, mc_act act, float *y, float *scratch);

typedef struct mc_kset {
    const char *name;
    int mr, nr;          /* micro-tile */
    int mc, kc, nc;      /* cache blocks (mc multiple of mr, nc multiple of nr) */
    mc_ukr_fn ukr;
    /* Packs rows [0, mr) of row-major a (row stride lda) over kc columns into
     * an MR-row panel (MR <= 32), zero padded, writing up to 8 floats past
     * the panel's end; also packs transposed B panels.  NULL: portable. */
    void (*pack_a_rows)(const float *a, int lda, int mr, int MR, int kc, float *dst);
    /* Packs columns [0, n) of kc rows of row-major b (row stride ldb) into
     * (n + NR - 1) / NR consecutive NR-column panels (each kc x NR, the last
     * zero padded): the B of a conv, rows being channels of NCHW maps.
     * NULL: the portable packer, one panel at a time (gemm.c). */
    void (*pack_b_cols)(const float *b, int ldb, int n, int NR, int kc, float *dst);
    mc_epi_fn epi;
    /* y[i * ldy + j] = x[i, :] . w[j, :], i < m (m small), j < n; NULL: none. */
    void (*gemv)(const float *x, int m, int k, const float *w, int n, float *y, size_t ldy);
    mc_dw_fn dw;
    void (*act)(float *x, size_t n, mc_act act);
    void (*softmax_row)(float *x, int n);
    void (*layernorm_row)(const float *x, int dim, const float *g, const float *b, float eps,
                          float *y);
    /* LayerNorm over c channels for pixels [p0, p1) of one NCHW image. */
    void (*layernorm_nchw)(const float *x, int c, int hw, int p0, int p1, const float *g,
                           const float *b, float eps, float *y);
    /* dst[j] = float32 of the j-th element of src (bf16 / f16 bits, or int8
     * times scale), j < n; for MC_WT_F32 a copy. */
    void (*cvt)(mc_wtype t, const void *src, int n, float scale, float *dst);
    /* Dense 3x3 conv, stride 2, padding 1, cin <= 4 (the image stem), of one
     * image x[cin, h, w]: output rows [oy0, oy1) of y[cout, oh, ow] =
     * act(conv + b) (b may be NULL), weights wt[cout, cin 9].  scratch:
     * mc_conv3s2_scratch_floats(cin, w) floats.  NULL: im2col + SGEMM. */
    void (*conv3s2)(const float *x, int cin, int h, int w, const float *wt, const float *b, int cout,
                    int oy0, int oy1, mc_act act, float *y, float *scratch);
} mc_kset;

/* Width of one phase row of the conv3s2 scratch (input width w): at least
 * the output width + 1, a multiple of 8, at least 16. */
static inline int mc_conv3s2_wq(int w) {
    int ow = mc_conv_out(w, 3, 2, 1), wq = (ow + 1 + 7) & ~7;
    return wq < 16 ? 16 : wq;
}
/* Scratch floats of conv3s2: two phase rows per tap row (cin 3 of them). */
static inline size_t mc_conv3s2_scratch_floats(int cin, int w) { return (size_t)cin * 3 * 2 * (size_t)mc_conv3s2_wq(w) + 16; }

/* Scratch layout of one depthwise plane (AVX2 kernel): a table of prow input
 * row pointers (padded rows, 2 floats each), a zero row of zlen floats (the
 * padding rows point there when the static one is too short), then h rows of
 * rowlen floats: the column-phase split rows (sw > 1, sw phases of wq
 * floats), or for sw == 1 the zero-padded copy of a narrow plane (whole) or
 * of one border block's columns (8 outputs wide); then 8 floats of slack and
 * a padded input row (sw > 1, sw wq + 8 floats). */
typedef struct mc_dw_geom {
    int oh, ow, prow, whole;
    size_t wq, rowlen, zlen, table, total;
} mc_dw_geom;

static inline mc_dw_geom mc_dw_geometry(const mc_conv2d_desc *d, int h, int w) {
    mc_dw_geom g;
    g.oh = mc_conv_out(h, d->kh, d->sh, d->ph), g.ow = mc_conv_out(w, d->kw, d->sw, d->pw);
    g.prow = (g.oh > 0 ? (g.oh - 1) * d->sh : 0) + d->kh;
    int owr = g.ow > 8 ? g.ow : 8;
    g.whole = d->sw == 1 && w <= 32;
    g.wq = (size_t)((owr + (d->kw - 1) / d->sw + 7) & ~7);
    g.rowlen = d->sw > 1 ? (size_t)d->sw * g.wq
               : (size_t)(((g.whole ? owr : 8) + d->kw - 1 + 7) & ~7);
    g.zlen = (((size_t)(w > (int)g.rowlen ? w : (int)g.rowlen) + d->kw + 8) + 15) & ~(size_t)15;
    g.table = ((size_t)g.prow * 2 + 15) & ~(size_t)15;
    g.total = g.table + g.zlen + (size_t)h * g.rowlen + 8 + (d->sw > 1 ? g.rowlen + 16 : 0) + 64;
    return g;
}

/* Floats of scratch a depthwise plane needs (mc_dw_geometry). */
static inline size_t mc_dw_scratch_floats(const mc_conv2d_desc *d, int h, int w) { return mc_dw_geometry(d, h, w).total; }

/* q's packed copy when it fits kernel set ks used as the B (b = 1) or A operand. */
static inline const float *mc_qmat_packed_for(const mc_qmat *q, const mc_kset *ks, int b) {
    if (!q || !q->packed || q->pk_b != b || q->pk_kc != ks->kc || q->pk_r != (b ? ks->nr : ks->mr)) return NULL;
    return q->packed;
}

#endif /* MC_KERNELS_KSET_H */
