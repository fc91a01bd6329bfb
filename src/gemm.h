/*
 * gemm.h - internals of the fast kernels: the per-CPU kernel set (micro-kernel
 * and vector helpers filled in by kernels_avx2.c / kernels_avx512.c /
 * kernels_neon.c / the portable C set in gemm.c), the blocked SGEMM driver, CPU detection and the
 * thread-local scratch buffers.  Not part of the kernel interface (kernels.h).
 */
#ifndef MC_GEMM_H
#define MC_GEMM_H

#include "kernels.h"

#include <stddef.h>

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

/* Kernel sets.  avx2/avx512/neon fill *ks and return 1 (0 when not compiled
 * in: the x86 sets on other targets, neon off AArch64; cpu.c has the stubs). */
void mc_kset_portable(mc_kset *ks);
int mc_kset_avx2(mc_kset *ks);
int mc_kset_avx512(mc_kset *ks);
int mc_kset_neon(mc_kset *ks);

/* The AVX2 A-panel packer (also used by the AVX-512 set). */
void mc_pack_a_rows_avx2(const float *a, int lda, int mr, int MR, int kc, float *dst);

/* CPU features: 2 = AVX-512F/BW/VL/DQ usable, 1 = AVX2+FMA usable, 0 = neither;
 * on AArch64 always 1 (NEON, part of the base ISA). */
int mc_cpu_level(void);

/* The kernel set in use (chosen once), and a switch for tests and benchmarks:
 * mc_kernels_force("scalar" | "avx2" | "avx512" | "neon" | NULL = best); returns
 * 0 when that set is not available on this CPU. */
const mc_kset *mc_kset_get(void);
int mc_kernels_force(const char *name);
/* Test hook: makes *ks (kept alive by the caller) the set in use, NULL the
 * best one; for sets built outside the library, such as the AVX-512 source
 * compiled over emu512.h, mc_kset_avx512_emu (linked into the tests only;
 * it needs mc_cpu_level() >= 1). */
void mc_kernels_force_set(const mc_kset *ks);
int mc_kset_avx512_emu(mc_kset *ks);

/* Scratch owned by the calling thread, grown on demand, never shrunk (no
 * allocation per call in steady state).  Slots keep callers' uses apart. */
enum { MC_SCRATCH_PACK_A, MC_SCRATCH_PACK_B, MC_SCRATCH_CONV, MC_SCRATCH_ATTN, MC_SCRATCH_PACK_Q, MC_SCRATCH_N };
/* NULL when the memory cannot be had (or exceeds the test limit); every caller
 * then takes a path that needs no scratch, since the kernels cannot fail. */
float *mc_scratch(int slot, size_t floats);
/* Test hook: scratch requests above this many floats fail ((size_t)-1: none). */
void mc_scratch_set_limit(size_t floats);

/* Threads for a kernel call: the set count (0 = all cores), 1 inside a
 * parallel region or when work (flops) is too small to share. */
int mc_threads_for(double flops);

/* Blocked SGEMM (same contract as mc_gemm) with an optional fused epilogue:
 * brow[m] added per row, bcol[n] per column, then act (after alpha/beta). */
void mc_gemm_ex(const mc_kset *ks, int nthreads, int ta, int tb, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc,
                const float *brow, const float *bcol, mc_act act);

/* A reduced-precision GEMM operand: rows row0.. of q, all its columns. */
typedef struct mc_qop {
    const mc_qmat *q;
    int64_t row0;
} mc_qop;

/* Address of element (r, c) of q's data. */
static inline const void *mc_qmat_at(const mc_qmat *q, int64_t r, int64_t c) {
    size_t es = q->type == MC_WT_I8 ? 1 : q->type == MC_WT_F32 ? 4 : 2;
    return (const char *)q->data + ((size_t)r * (size_t)q->cols + (size_t)c) * es;
}

/* mc_gemm_ex with op(a)[i, p] = qa row i, column p when qa is non-NULL (ta,
 * a and lda are then ignored), and op(b)[p, j] = qb row j, column p when qb
 * is non-NULL (tb, b, ldb ignored): a weight matrix [out, in] serves as the
 * A of a conv (out x pixels) or the transposed B of a linear layer.  Rows are
 * converted to float32 while the panels are packed. */
void mc_gemm_q(const mc_kset *ks, int nthreads, int ta, int tb, int m, int n, int k, float alpha,
               const float *a, int lda, const mc_qop *qa, const float *b, int ldb, const mc_qop *qb,
               float beta, float *c, int ldc, const float *brow, const float *bcol, mc_act act);

/* Floats of a pre-packed copy of a [rows, cols] weight matrix for kernel set
 * ks, as the B of a linear layer (b = 1) or the A of a conv (b = 0); 0 on
 * overflow. */
size_t mc_qmat_packed_floats(const mc_kset *ks, int b, int64_t rows, int64_t cols);
/* Packs w[rows, cols] into dst (mc_qmat_packed_floats floats) and makes *q a
 * float32 mc_qmat of w carrying the packed copy (layout in kernels.h).  The
 * caller may then give w back and set q->data to NULL: readers of a float32
 * q without data take its values from the packed copy (mc_qmat_unpack). */
void mc_qmat_pack(const mc_kset *ks, int b, const float *w, int64_t rows, int64_t cols, float *dst, mc_qmat *q);
/* Rows [r0, r0 + nr), columns [c0, c0 + n) of q's packed copy (q->packed
 * non-NULL) into dst, row stride ldd: the inverse of mc_qmat_pack (packing
 * only moves values and pads with zeros, so this is exact).  Scalar, for any
 * kernel set's geometry. */
void mc_qmat_unpack(const mc_qmat *q, int64_t r0, int nr, int64_t c0, int n, float *dst, size_t ldd);
/* q's packed copy when it fits kernel set ks used as the B (b = 1) or A operand. */
static inline const float *mc_qmat_packed_for(const mc_qmat *q, const mc_kset *ks, int b) {
    if (!q || !q->packed || q->pk_b != b || q->pk_kc != ks->kc || q->pk_r != (b ? ks->nr : ks->mr)) return NULL;
    return q->packed;
}

/* The scalar conversion (every kernel set's reference; the portable set's cvt). */
void mc_cvt_ref(mc_wtype t, const void *src, int n, float scale, float *dst);

/* cblas_sgemm when built with BLAS=openblas; returns 0 (does nothing) otherwise. */
int mc_gemm_blas(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);

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
size_t mc_dw_scratch_floats(const mc_conv2d_desc *d, int h, int w);

#endif /* MC_GEMM_H */
