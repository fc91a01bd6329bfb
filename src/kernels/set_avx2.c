/*
 * kernels/set_avx2.c - the AVX2 + FMA kernel set: the 6 x 16 SGEMM micro-kernel
 * (gemm_ukr.h), the A / transposed-B panel packer, the vector math, bias +
 * activation epilogue and few-row dot products (kernels/vec.h at 8 lanes),
 * depthwise convolution (register-blocked, input read in place or from
 * zero-padded / phase-split copies where needed), the direct small-cin
 * 3x3 stride-2 conv (image stem), softmax and LayerNorm,
 * and the bf16 / f16 / int8 weight conversions.
 * Compiled with -mavx2 -mfma -mf16c; used only when mc_cpu_level() says so.  The
 * AVX-512 set replaces the micro-kernel and the kernels/vec.h parts and
 * reuses the rest.
 */
#include "kernels/set_avx2.h"
#include "core/cpu.h"
#include "kernels/qmat.h"
#include "kernels/set_portable.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

typedef __m256 vf;

/* ---- GEMM micro-kernel ---- */
#define VF __m256
#define VW 8
#define UKR_MR 6
#define UKR_NAME ukr_avx2_6x16
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VBCAST _mm256_broadcast_ss
#define VFMA _mm256_fmadd_ps
#define VMUL _mm256_mul_ps
#define VZERO _mm256_setzero_ps
#define VSET1 _mm256_set1_ps
#include "kernels/gemm_ukr.h"

/* ---- packing rows of a row-major matrix (A, or B^T) into MR-row panels ----
 * 8 rows x 8 columns at a time through an in-register transpose; rows past
 * mr read as zero.  Masked stores are avoided (slow on some cores). */
static inline void transpose8(vf r[8]) {
    vf t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    vf t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    vf t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    vf t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    vf u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    vf u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    vf u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    vf u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20), r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20), r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31), r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31), r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

void mc_pack_a_rows_avx2(const float *a, int lda, int mr, int MR, int kc, float *dst) {
    if (MR > 32) {   /* not a shape the kernel sets use */
        for (int p = 0; p < kc; p++)
            for (int i = 0; i < MR; i++) dst[(size_t)p * MR + i] = i < mr ? a[(size_t)i * lda + p] : 0.0f;
        return;
    }
    int p = 0;
    for (; p + 8 <= kc; p += 8) {
        vf r[4][8];
        int ng = (MR + 7) / 8;
        for (int gi = 0; gi < ng; gi++) {
            for (int i = 0; i < 8; i++) {
                int row = gi * 8 + i;
                r[gi][i] = row < mr ? _mm256_loadu_ps(a + (size_t)row * lda + p) : _mm256_setzero_ps();
            }
            transpose8(r[gi]);
        }
        /* 8-wide stores in ascending order: a short last group spills into
         * the next column's first rows, which the next store overwrites (the
         * panel buffer has slack after its end). */
        float *d = dst + (size_t)p * MR;
        for (int q = 0; q < 8; q++)
            for (int gi = 0; gi < ng; gi++) _mm256_storeu_ps(d + (size_t)q * MR + gi * 8, r[gi][q]);
    }
    for (; p < kc; p++)
        for (int i = 0; i < MR; i++) dst[(size_t)p * MR + i] = i < mr ? a[(size_t)i * lda + p] : 0.0f;
}

/* ---- packing column panels of a row-major B (a conv's input channels) ----
 * Source rows sit a whole channel plane apart.  Panels are packed in groups
 * of 8: each source row is then read as 512 contiguous bytes (the hardware
 * prefetchers follow it, one page walk per row and group instead of per
 * panel), each 16-column panel row being two 8-float moves. */
static void pack_b_cols_avx2(const float *b, int ldb, int n, int NR, int kc, float *dst) {
    const size_t ld = (size_t)ldb;
    int j0 = 0;
    if (NR == 16)
        for (; j0 + 16 <= n;) {
            int g = (n - j0) / 16;
            if (g > 8) g = 8;
            float *d0 = dst + (size_t)j0 * kc;
            for (int p = 0; p < kc; p++) {
                const float *s = b + (size_t)p * ld + j0;
                float *d = d0 + (size_t)p * 16;
                for (int q = 0; q < g; q++) {
                    _mm256_storeu_ps(d + (size_t)q * kc * 16, _mm256_loadu_ps(s + 16 * q));
                    _mm256_storeu_ps(d + (size_t)q * kc * 16 + 8, _mm256_loadu_ps(s + 16 * q + 8));
                }
            }
            j0 += 16 * g;
        }
    for (; j0 < n; j0 += NR) {   /* the last, partial panel (or another panel width) */
        int nr = n - j0 < NR ? n - j0 : NR;
        float *d = dst + (size_t)j0 * kc;
        for (int p = 0; p < kc; p++) {
            const float *s = b + (size_t)p * ld + j0;
            int j = 0;
            for (; j < nr; j++) d[j] = s[j];
            for (; j < NR; j++) d[j] = 0;
            d += NR;
        }
    }
    _mm256_zeroupper();
}

/* ---- vector math ---- */

static inline __m256i tail_mask(int rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline float hsum(vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax(vf v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- vector math, epilogue, dot products (kernels/vec.h) at 8 lanes ---- */
#define VM __m256
#define VTM __m256i
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VDIV _mm256_div_ps
#define VMAX _mm256_max_ps
#define VMIN _mm256_min_ps
#define VFNMA _mm256_fnmadd_ps
#define VABS(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
#define VSHL23(v) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(v), 23))
/* integer min / max / add on the float bits (v_gelu's clamps, 2^n scaling) */
#define VMINI(a, b) _mm256_castsi256_ps(_mm256_min_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)))
#define VMINU(a, b) _mm256_castsi256_ps(_mm256_min_epu32(_mm256_castps_si256(a), _mm256_castps_si256(b)))
#define VMAXI(a, b) _mm256_castsi256_ps(_mm256_max_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)))
#define VADDI(a, b) _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)))
#define VCMP_LT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define VCMP_GE(a, b) _mm256_cmp_ps(a, b, _CMP_GE_OQ)
#define VCMP_UNORD(a) _mm256_cmp_ps(a, a, _CMP_UNORD_Q)
#define VSEL(m, f, t) _mm256_blendv_ps(f, t, m)      /* m ? t : f */
#define VTAIL tail_mask
#define VLOAD_TAIL(p, m) _mm256_maskload_ps(p, m)
#define VSTORE_TAIL(p, m, v) _mm256_maskstore_ps(p, m, v)
#define EPI_NAME epi_avx2
#define ACT_NAME act_avx2
#define GEMV_NAME gemv_avx2
#define VHSUM hsum
#include "kernels/vec.h"

/* ---- depthwise convolution of one plane ----
 * Output is computed in blocks of R rows x 8 columns (one vector per row,
 * R independent accumulator chains).  Tap column kx is the outer loop: the
 * kh weights of that column sit in registers and every input row vector the
 * block needs is loaded once and added into each output row it reaches
 * (tap row = input row - output row * sh).  The bias is the accumulators'
 * start value.  Input rows come through a table of padded-row pointers, the
 * padding rows pointing at one zero row, so no vertical padding is stored.
 * Columns: stride 1 reads the input plane in place wherever the block's taps
 * stay inside the row, and a small zero-padded copy of the block's columns
 * (a tile, 8 + kw - 1 wide) at the borders; larger strides split each input
 * row once into sw zero-padded column phases (phase s, column j holds padded
 * column j sw + s), so tap kx reads phase kx % sw at column ox + kx / sw,
 * contiguous.  Row and column blocks past the first overlap the previous
 * one where the plane is not a multiple of the block (the same values are
 * stored twice); the activation runs once over the finished plane. */

/* Accumulate an R-row block: input row rr of the block (padded row
 * oy0 sh + rr) is at rp[rr], tap column kx at offset o + toff[kx]. */
static inline __attribute__((always_inline)) void dw_blk(const float *const *rp, ptrdiff_t o,
                                                        const ptrdiff_t *toff, const float *k, int kh,
                                                        int kw, int sh, int R, vf vb, float *y,
                                                        size_t ys) {
    vf acc[8], wk[8];
#pragma GCC unroll 8
    for (int j = 0; j < R; j++) acc[j] = vb;
    for (int kx = 0; kx < kw; kx++) {
#pragma GCC unroll 8
        for (int ky = 0; ky < kh; ky++) wk[ky] = _mm256_broadcast_ss(k + ky * kw + kx);
        const ptrdiff_t off = o + toff[kx];
#pragma GCC unroll 32
        for (int rr = 0; rr < (R - 1) * sh + kh; rr++) {
            vf v = _mm256_loadu_ps(rp[rr] + off);
#pragma GCC unroll 8
            for (int j = 0; j < R; j++) {
                int ky = rr - j * sh;
                if (ky >= 0 && ky < kh) acc[j] = _mm256_fmadd_ps(wk[ky], v, acc[j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < R; j++) _mm256_storeu_ps(y + (size_t)j * ys, acc[j]);
}

/* Any kernel height and row stride: weights broadcast per tap. */
static inline __attribute__((always_inline)) void dw_blk_any(const float *const *rp, ptrdiff_t o,
                                                            const ptrdiff_t *toff, const float *k, int kh,
                                                            int kw, int sh, int R, vf vb, float *y,
                                                            size_t ys) {
    vf acc[4];
#pragma GCC unroll 4
    for (int j = 0; j < R; j++) acc[j] = vb;
    for (int kx = 0; kx < kw; kx++) {
        const ptrdiff_t off = o + toff[kx];
        for (int ky = 0; ky < kh; ky++) {
            vf w = _mm256_broadcast_ss(k + ky * kw + kx);
#pragma GCC unroll 4
            for (int j = 0; j < R; j++) acc[j] = _mm256_fmadd_ps(w, _mm256_loadu_ps(rp[j * sh + ky] + off), acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < R; j++) _mm256_storeu_ps(y + (size_t)j * ys, acc[j]);
}

/* The bias is passed as a float: a function with a vector argument returns
 * without vzeroupper, and the legacy-SSE callers then pay for the dirty
 * upper register halves (measured: ~0.1 us per call). */
typedef void (*dw_blk_fn)(const float *const *rp, ptrdiff_t o, const ptrdiff_t *toff, const float *k,
                          int kh, int kw, int sh, float bias, float *y, size_t ys);

#define DW_BLK(KH, SH, R)                                                                                   \
    static void dw_blk_##KH##_##SH##_##R(const float *const *rp, ptrdiff_t o, const ptrdiff_t *toff,     \
                                         const float *k, int kh, int kw, int sh, float bias, float *y,   \
                                         size_t ys) {                                                     \
        (void)kh, (void)sh;                                                                               \
        dw_blk(rp, o, toff, k, KH, kw, SH, R, _mm256_set1_ps(bias), y, ys);                               \
    }
DW_BLK(3, 1, 8) DW_BLK(3, 1, 4) DW_BLK(3, 1, 1)
DW_BLK(3, 2, 8) DW_BLK(3, 2, 4) DW_BLK(3, 2, 1)
DW_BLK(7, 1, 8) DW_BLK(7, 1, 4) DW_BLK(7, 1, 1)
DW_BLK(7, 2, 8) DW_BLK(7, 2, 4) DW_BLK(7, 2, 1)
#undef DW_BLK

static void dw_blk_any_4(const float *const *rp, ptrdiff_t o, const ptrdiff_t *toff, const float *k, int kh,
                         int kw, int sh, float bias, float *y, size_t ys) {
    dw_blk_any(rp, o, toff, k, kh, kw, sh, 4, _mm256_set1_ps(bias), y, ys);
}
static void dw_blk_any_1(const float *const *rp, ptrdiff_t o, const ptrdiff_t *toff, const float *k, int kh,
                         int kw, int sh, float bias, float *y, size_t ys) {
    dw_blk_any(rp, o, toff, k, kh, kw, sh, 1, _mm256_set1_ps(bias), y, ys);
}

/* The block routine for (kh, sh) and its row count (8, 4 or 1, at most oh). */
static dw_blk_fn dw_pick(int kh, int sh, int oh, int *rows) {
    static const dw_blk_fn tab[2][2][3] = {
        {{dw_blk_3_1_8, dw_blk_3_1_4, dw_blk_3_1_1}, {dw_blk_3_2_8, dw_blk_3_2_4, dw_blk_3_2_1}},
        {{dw_blk_7_1_8, dw_blk_7_1_4, dw_blk_7_1_1}, {dw_blk_7_2_8, dw_blk_7_2_4, dw_blk_7_2_1}}};
    int ri = oh >= 8 ? 0 : oh >= 4 ? 1 : 2;
    if ((kh == 3 || kh == 7) && (sh == 1 || sh == 2)) {
        *rows = ri == 0 ? 8 : ri == 1 ? 4 : 1;
        return tab[kh == 7][sh == 2][ri];
    }
    *rows = oh >= 4 ? 4 : 1;
    return oh >= 4 ? dw_blk_any_4 : dw_blk_any_1;
}

/* dst[t] = src[c0 + t] where 0 <= c0 + t < w, else 0, for t < n (n a
 * multiple of 8), by whole-vector stores that may run up to 7 floats past
 * dst + n (the next row, built after this one, or the buffer's slack). */
static inline void dw_pad_row(float *dst, size_t n, const float *src, int w, int c0) {
    int lo = c0 < 0 ? -c0 : 0, hi = w - c0 < (int)n ? w - c0 : (int)n;   /* valid t: [lo, hi) */
    if (hi - lo < 8) {
        for (int t = 0; t < (int)n; t++) dst[t] = t >= lo && t < hi ? src[c0 + t] : 0.0f;
        return;
    }
    vf z = _mm256_setzero_ps();
    __asm__("" : "+x"(z));   /* opaque: keeps the short zero-store loops from becoming memset calls */
    for (int t = 0; t < lo; t += 8) _mm256_storeu_ps(dst + t, z);
    int t = lo;
    for (; t + 8 <= hi; t += 8) _mm256_storeu_ps(dst + t, _mm256_loadu_ps(src + c0 + t));
    if (t < hi) _mm256_storeu_ps(dst + hi - 8, _mm256_loadu_ps(src + c0 + hi - 8));
    for (t = hi; t < (int)n; t += 8) _mm256_storeu_ps(dst + t, z);
}

/* One input row split by column phase: phase s, column j < wq holds input
 * column j sw + s - pw (0 outside the row).  tmp: sw wq + 8 floats. */
static void dw_split_row(float *dst, size_t wq, const float *src, int w, int sw, int pw, float *tmp) {
    if (sw == 2) {   /* the zero-padded row, then 16 columns give 8 of each phase */
        dw_pad_row(tmp, 2 * wq, src, w, -pw);
        for (size_t j = 0; j < wq; j += 8) {
            vf lo = _mm256_loadu_ps(tmp + 2 * j), hi = _mm256_loadu_ps(tmp + 2 * j + 8);
            vf ev = _mm256_shuffle_ps(lo, hi, 0x88), od = _mm256_shuffle_ps(lo, hi, 0xdd);   /* 0 2 8 10 | 4 6 12 14 */
            _mm256_storeu_ps(dst + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xd8)));
            _mm256_storeu_ps(dst + wq + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xd8)));
        }
        return;
    }
    for (int s = 0; s < sw; s++)
        for (size_t j = 0; j < wq; j++) {
            long c = (long)j * sw + s - pw;
            dst[(size_t)s * wq + j] = c >= 0 && c < w ? src[c] : 0.0f;
        }
}

static float dw_zeros[2048] __attribute__((aligned(64)));   /* never written: the padding rows */

static void dw_avx2(const float *x, int h, int w, const float *k, const mc_conv2d_desc *d, float bias,
                    mc_act act, float *y, float *scratch) {
    const int kh = d->kh, kw = d->kw, sh = d->sh, sw = d->sw, ph = d->ph, pw = d->pw;
    if (kw > 64) {   /* wider than any real kernel: portable path */
        mc_kset ps;
        mc_kset_portable(&ps);
        ps.dw(x, h, w, k, d, bias, act, y, scratch);
        return;
    }
    const mc_dw_geom g = mc_dw_geometry(d, h, w);
    const int oh = g.oh, ow = g.ow;
    const float **rp = (const float **)(void *)scratch;
    float *buf = scratch + g.table + g.zlen;
    const float *zrow = dw_zeros;
    if (g.zlen > sizeof dw_zeros / sizeof dw_zeros[0]) {   /* a very wide plane: a zero row in scratch */
        memset(scratch + g.table, 0, g.zlen * sizeof(float));
        zrow = scratch + g.table;
    }
    int R;
    dw_blk_fn blk = dw_pick(kh, sh, oh, &R);
    float tmpy[8 * 8];   /* one block when the plane is narrower than a vector */
    ptrdiff_t toff[64];

    /* one column block at ox (o: its offset in the rows rp points at) over every row block */
#define DW_COLUMN(ox, o)                                                                      \
    for (int oy = 0;; oy += R) {                                                              \
        if (oy + R > oh) oy = oh - R;                                                         \
        if (ow >= 8) {                                                                        \
            blk(rp + (size_t)oy * sh, o, toff, k, kh, kw, sh, bias, y + (size_t)oy * ow + (ox), (size_t)ow); \
        } else {                                                                              \
            blk(rp + (size_t)oy * sh, o, toff, k, kh, kw, sh, bias, tmpy, 8);                    \
            for (int j = 0; j < R; j++) memcpy(y + (size_t)(oy + j) * ow, tmpy + 8 * j, (size_t)ow * sizeof(float)); \
        }                                                                                     \
        if (oy + R >= oh) break;                                                              \
    }

    if (sw == 1 && g.whole) {   /* a narrow plane: one zero-padded copy, column t = input column t - pw */
        for (int kx = 0; kx < kw; kx++) toff[kx] = kx;
        for (int iy = 0; iy < h; iy++) dw_pad_row(buf + (size_t)iy * g.rowlen, g.rowlen, x + (size_t)iy * w, w, -pw);
        for (int r = 0; r < g.prow; r++) {
            int iy = r - ph;
            rp[r] = iy >= 0 && iy < h ? buf + (size_t)iy * g.rowlen : zrow;
        }
        for (int ox = 0;; ox += 8) {
            if (ow >= 8 && ox + 8 > ow) ox = ow - 8;
            DW_COLUMN(ox, ox)
            if (ox + 8 >= ow) break;
        }
    } else if (sw == 1) {
        for (int kx = 0; kx < kw; kx++) toff[kx] = kx;
        /* the input in place: rows of x, padding rows at the zero row */
        for (int r = 0; r < g.prow; r++) {
            int iy = r - ph;
            rp[r] = iy >= 0 && iy < h ? x + (size_t)iy * w : zrow;
        }
        int tiled = -1;   /* rp points at x (-1) or at the tile */
        for (int ox = 0;; ox += 8) {
            if (ow >= 8 && ox + 8 > ow) ox = ow - 8;
            int c0 = ox - pw;
            if (ow >= 8 && c0 >= 0 && c0 + 8 + kw - 1 <= w) {
                if (tiled != -1) {
                    for (int r = 0; r < g.prow; r++) {
                        int iy = r - ph;
                        rp[r] = iy >= 0 && iy < h ? x + (size_t)iy * w : zrow;
                    }
                    tiled = -1;
                }
                DW_COLUMN(ox, c0)
            } else {   /* a border block: its columns copied with zero padding */
                for (int iy = 0; iy < h; iy++) dw_pad_row(buf + (size_t)iy * g.rowlen, g.rowlen, x + (size_t)iy * w, w, c0);
                if (tiled != 1) {
                    for (int r = 0; r < g.prow; r++) {
                        int iy = r - ph;
                        rp[r] = iy >= 0 && iy < h ? buf + (size_t)iy * g.rowlen : zrow;
                    }
                    tiled = 1;
                }
                DW_COLUMN(ox, 0)
            }
            if (ox + 8 >= ow) break;
        }
    } else {
        float *tmp = buf + (size_t)h * g.rowlen + 8;
        for (int kx = 0; kx < kw; kx++) toff[kx] = (ptrdiff_t)(kx % sw) * (ptrdiff_t)g.wq + kx / sw;
        for (int iy = 0; iy < h; iy++) dw_split_row(buf + (size_t)iy * g.rowlen, g.wq, x + (size_t)iy * w, w, sw, pw, tmp);
        for (int r = 0; r < g.prow; r++) {
            int iy = r - ph;
            rp[r] = iy >= 0 && iy < h ? buf + (size_t)iy * g.rowlen : zrow;
        }
        for (int ox = 0;; ox += 8) {
            if (ow >= 8 && ox + 8 > ow) ox = ow - 8;
            DW_COLUMN(ox, ox)
            if (ox + 8 >= ow) break;
        }
    }
#undef DW_COLUMN
    if (act != MC_ACT_NONE) epi_avx2(y, 0, 1, oh * ow, NULL, NULL, act);
    _mm256_zeroupper();   /* the caller is legacy-SSE code */
}

/* ---- small-cin dense 3x3 stride-2 conv (the image stem) ----
 * Per output row, the 3 input rows of each channel are split once into an
 * even phase E[j] = x[2j] and a shifted odd phase O[j] = x[2j - 1] (zero
 * outside the row), so tap kx of output column ox reads O[ox] (kx = 0),
 * E[ox] (kx = 1) or O[ox + 1] (kx = 2): contiguous vectors.  Blocks of 4
 * output channels x 24 columns (12 accumulators) take each of the cin 9
 * taps as 3 input loads and 4 weight broadcasts; sums start at zero and run
 * over taps in (ic, ky, kx) order, as the im2col GEMM's do, and the bias and
 * activation go on through the GEMM epilogue, so results equal that path's. */

/* E[0, wq) and O[0, wq) of one input row of w floats (src NULL: a padding row). */
static void c3_split_row(const float *src, int w, float *e, float *o, int wq) {
    if (!src) {
        memset(e, 0, (size_t)wq * sizeof(float));
        memset(o, 0, (size_t)wq * sizeof(float));
        return;
    }
    int j = 0;
    o[0] = 0;
    for (; 2 * j + 16 <= w; j += 8) {
        vf a = _mm256_loadu_ps(src + 2 * j), b = _mm256_loadu_ps(src + 2 * j + 8);
        vf ev = _mm256_shuffle_ps(a, b, 0x88), od = _mm256_shuffle_ps(a, b, 0xdd);
        ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xd8));
        od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xd8));
        _mm256_storeu_ps(e + j, ev);
        _mm256_storeu_ps(o + j + 1, od);
    }
    for (; j < wq; j++) {
        e[j] = 2 * j < w ? src[2 * j] : 0.0f;
        if (j + 1 < wq) o[j + 1] = 2 * j + 1 < w ? src[2 * j + 1] : 0.0f;
    }
}

/* NO output channels (weights wt, row stride kk) x NV vectors at column ox;
 * rows[r] is the E phase of tap row r = ic 3 + ky, its O phase wq further. */
static inline __attribute__((always_inline)) void c3_blk(float *const *rows, int nrows, int wq,
                                                        const float *wt, int kk, int NO, int NV, int ox,
                                                        float *y, size_t ldy) {
    vf acc[4][3];
    #pragma GCC unroll 4
    for (int o = 0; o < NO; o++)
        #pragma GCC unroll 3
        for (int v = 0; v < NV; v++) acc[o][v] = _mm256_setzero_ps();
    for (int r = 0; r < nrows; r++) {
        const float *e = rows[r] + ox, *od = rows[r] + wq + ox;
        #pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++) {
            const float *src = kx == 1 ? e : od + (kx == 2);
            vf in[3];
            #pragma GCC unroll 3
            for (int v = 0; v < NV; v++) in[v] = _mm256_loadu_ps(src + 8 * v);
            #pragma GCC unroll 4
            for (int o = 0; o < NO; o++) {
                vf wv = _mm256_broadcast_ss(wt + (size_t)o * kk + r * 3 + kx);
                #pragma GCC unroll 3
                for (int v = 0; v < NV; v++) acc[o][v] = _mm256_fmadd_ps(wv, in[v], acc[o][v]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int o = 0; o < NO; o++)
        #pragma GCC unroll 3
        for (int v = 0; v < NV; v++) _mm256_storeu_ps(y + (size_t)o * ldy + 8 * v, acc[o][v]);
}

static void c3_blk_4x2(float *const *rows, int nrows, int wq, const float *wt, int kk, int ox, float *y, size_t ldy) {
    c3_blk(rows, nrows, wq, wt, kk, 4, 2, ox, y, ldy);
}
static void c3_blk_4x1(float *const *rows, int nrows, int wq, const float *wt, int kk, int ox, float *y, size_t ldy) {
    c3_blk(rows, nrows, wq, wt, kk, 4, 1, ox, y, ldy);
}
static void c3_blk_1x2(float *const *rows, int nrows, int wq, const float *wt, int kk, int ox, float *y, size_t ldy) {
    c3_blk(rows, nrows, wq, wt, kk, 1, 2, ox, y, ldy);
}
static void c3_blk_1x1(float *const *rows, int nrows, int wq, const float *wt, int kk, int ox, float *y, size_t ldy) {
    c3_blk(rows, nrows, wq, wt, kk, 1, 1, ox, y, ldy);
}

static void conv3s2_avx2(const float *x, int cin, int h, int w, const float *wt, const float *b, int cout,
                         int oy0, int oy1, mc_act act, float *y, float *scratch) {
    const int oh = mc_conv_out(h, 3, 2, 1), ow = mc_conv_out(w, 3, 2, 1), wq = mc_conv3s2_wq(w);
    const int kk = cin * 9, nrows = cin * 3;
    const size_t ohw = (size_t)oh * ow;
    float *rows[12];
    float tmp[4 * 8];   /* one block when the row is narrower than a vector */
    for (int oy = oy0; oy < oy1; oy++) {
        for (int ic = 0; ic < cin; ic++)
            for (int ky = 0; ky < 3; ky++) {
                int r = ic * 3 + ky, iy = 2 * oy - 1 + ky;
                rows[r] = scratch + (size_t)r * 2 * wq;
                c3_split_row(iy >= 0 && iy < h ? x + ((size_t)ic * h + iy) * w : NULL, w, rows[r], rows[r] + wq, wq);
            }
        float *yr = y + (size_t)oy * ow;
        for (int oc = 0; oc < cout;) {
            int no = cout - oc >= 4 ? 4 : 1;
            const float *wo = wt + (size_t)oc * kk;
            float *yo = yr + (size_t)oc * ohw;
            int ox = 0;
            for (; ox + 16 <= ow; ox += 16)
                (no == 4 ? c3_blk_4x2 : c3_blk_1x2)(rows, nrows, wq, wo, kk, ox, yo + ox, ohw);
            for (; ox < ow; ox += 8) {
                if (ow < 8) {
                    (no == 4 ? c3_blk_4x1 : c3_blk_1x1)(rows, nrows, wq, wo, kk, 0, tmp, 8);
                    for (int o = 0; o < no; o++) memcpy(yo + (size_t)o * ohw, tmp + 8 * o, (size_t)ow * sizeof(float));
                    break;
                }
                if (ox + 8 > ow) ox = ow - 8;   /* overlaps the previous block: the same values again */
                (no == 4 ? c3_blk_4x1 : c3_blk_1x1)(rows, nrows, wq, wo, kk, ox, yo + ox, ohw);
            }
            oc += no;
        }
        if (b || act != MC_ACT_NONE) epi_avx2(yr, ohw, cout, ow, b, NULL, act);
    }
    _mm256_zeroupper();
}

/* ---- softmax and LayerNorm ---- */

static void softmax_row_avx2(float *x, int n) {
    if (n <= 0) return;
    vf vm = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 8 <= n; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + j));
    float mx = hmax(vm);
    for (int i = j; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    vf vmx = _mm256_set1_ps(mx), vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        vf e = v_exp(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmx));
        _mm256_storeu_ps(x + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    if (j < n) {
        __m256i m = tail_mask(n - j);
        vf e = v_exp(_mm256_sub_ps(_mm256_maskload_ps(x + j, m), vmx));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(x + j, m, e);
        vs = _mm256_add_ps(vs, e);
    }
    vf inv = _mm256_set1_ps(1.0f / hsum(vs));
    for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), inv));
    for (; j < n; j++) x[j] *= _mm256_cvtss_f32(inv);
}

static void layernorm_row_avx2(const float *x, int dim, const float *g, const float *b, float eps,
                               float *y) {
    vf s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int j = 0;
    for (; j + 16 <= dim; j += 16) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + j));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + j + 8));
    }
    double sum = (double)hsum(_mm256_add_ps(s0, s1));
    for (; j < dim; j++) sum += x[j];
    float mean = (float)(sum / dim);
    vf vm = _mm256_set1_ps(mean);
    s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (j = 0; j + 16 <= dim; j += 16) {
        vf d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm);
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    double var = (double)hsum(_mm256_add_ps(s0, s1));
    for (; j < dim; j++) { double dd = (double)x[j] - mean; var += dd * dd; }
    var /= dim;
    float rstd = (float)(1.0 / sqrt(var + eps));
    vf vr = _mm256_set1_ps(rstd);
    for (j = 0; j + 8 <= dim; j += 8) {
        vf v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr);
        if (g) v = _mm256_mul_ps(v, _mm256_loadu_ps(g + j));
        if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + j));
        _mm256_storeu_ps(y + j, v);
    }
    for (; j < dim; j++) {
        float v = (x[j] - mean) * rstd;
        if (g) v *= g[j];
        if (b) v += b[j];
        y[j] = v;
    }
}

/* Pixels [p0, p1) of one image in chunks of 64 (8 vectors, 4 cache lines
 * per channel row: narrower chunks thrash L1, since the channel stride is
 * often a multiple of 4 KiB).  Two passes for mean and variance, one to write. */
static void layernorm_nchw_avx2(const float *x, int c, int hw, int p0, int p1, const float *g,
                                const float *b, float eps, float *y) {
    const vf ve = _mm256_set1_ps(eps), vinvc = _mm256_set1_ps(1.0f / c), one = _mm256_set1_ps(1.0f);
    for (int p = p0; p < p1; p += 64) {
        int left = p1 - p;
        if (left >= 64) {
            const float *xp = x + p;
            float *yp = y + p;
            vf acc[8], mu[8], rs[8];
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) acc[v] = _mm256_setzero_ps();
            for (int ch = 0; ch < c; ch++) {
                const float *r = xp + (size_t)ch * hw;
#pragma GCC unroll 8
                for (int v = 0; v < 8; v++) acc[v] = _mm256_add_ps(acc[v], _mm256_loadu_ps(r + 8 * v));
            }
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) mu[v] = _mm256_mul_ps(acc[v], vinvc), acc[v] = _mm256_setzero_ps();
            for (int ch = 0; ch < c; ch++) {
                const float *r = xp + (size_t)ch * hw;
#pragma GCC unroll 8
                for (int v = 0; v < 8; v++) {
                    vf dd = _mm256_sub_ps(_mm256_loadu_ps(r + 8 * v), mu[v]);
                    acc[v] = _mm256_fmadd_ps(dd, dd, acc[v]);
                }
            }
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) rs[v] = _mm256_div_ps(one, _mm256_sqrt_ps(_mm256_fmadd_ps(acc[v], vinvc, ve)));
            for (int ch = 0; ch < c; ch++) {
                const float *r = xp + (size_t)ch * hw;
                float *o = yp + (size_t)ch * hw;
                vf gv = _mm256_set1_ps(g ? g[ch] : 1.0f), bv = _mm256_set1_ps(b ? b[ch] : 0.0f);
#pragma GCC unroll 8
                for (int v = 0; v < 8; v++) {
                    vf a0 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(r + 8 * v), mu[v]), rs[v]);
                    _mm256_storeu_ps(o + 8 * v, _mm256_fmadd_ps(a0, gv, bv));
                }
            }
            continue;
        }
        /* last partial chunk: one masked vector at a time */
        for (int q = p; q < p1; q += 8) {
            __m256i m = tail_mask(p1 - q > 8 ? 8 : p1 - q);
            const float *xp = x + q;
            float *yp = y + q;
            vf s0 = _mm256_setzero_ps();
            for (int ch = 0; ch < c; ch++) s0 = _mm256_add_ps(s0, _mm256_maskload_ps(xp + (size_t)ch * hw, m));
            vf mu0 = _mm256_mul_ps(s0, vinvc), v0 = _mm256_setzero_ps();
            for (int ch = 0; ch < c; ch++) {
                vf d0 = _mm256_sub_ps(_mm256_maskload_ps(xp + (size_t)ch * hw, m), mu0);
                v0 = _mm256_fmadd_ps(d0, d0, v0);
            }
            vf rs0 = _mm256_div_ps(one, _mm256_sqrt_ps(_mm256_fmadd_ps(v0, vinvc, ve)));
            for (int ch = 0; ch < c; ch++) {
                vf gv = _mm256_set1_ps(g ? g[ch] : 1.0f), bv = _mm256_set1_ps(b ? b[ch] : 0.0f);
                vf a0 = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xp + (size_t)ch * hw, m), mu0), rs0);
                _mm256_maskstore_ps(yp + (size_t)ch * hw, m, _mm256_fmadd_ps(a0, gv, bv));
            }
        }
    }
}

/* ---- reduced-precision weights to float32 (8 at a time): bf16 by a 16-bit
 * shift, f16 by F16C, int8 by sign extension, int -> float and the row scale.
 * Bit-identical to mc_cvt_ref. */
static void cvt_avx2(mc_wtype t, const void *src, int n, float scale, float *dst) {
    int j = 0;
    if (t == MC_WT_BF16) {
        const uint16_t *s = src;
        for (; j + 8 <= n; j += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + j)));
            _mm256_storeu_ps(dst + j, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
    } else if (t == MC_WT_F16) {
        const uint16_t *s = src;
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + j))));
    } else if (t == MC_WT_I8) {
        const int8_t *s = src;
        vf vs = _mm256_set1_ps(scale);
        for (; j + 8 <= n; j += 8) {
            __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(s + j)));
            _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_cvtepi32_ps(v), vs));
        }
    }
    if (j < n) mc_cvt_ref(t, (const char *)src + (size_t)j * (t == MC_WT_I8 ? 1 : t == MC_WT_F32 ? 4 : 2), n - j, scale,
                          dst + j);
}

int mc_kset_avx2(mc_kset *ks) {
    ks->name = "avx2";
    ks->mr = 6, ks->nr = 16;
    ks->mc = 6 * 20, ks->kc = 256, ks->nc = 16 * 128;
    ks->ukr = ukr_avx2_6x16;
    ks->pack_a_rows = mc_pack_a_rows_avx2;
    ks->pack_b_cols = pack_b_cols_avx2;
    ks->epi = epi_avx2;
    ks->gemv = gemv_avx2;
    ks->dw = dw_avx2;
    ks->conv3s2 = conv3s2_avx2;
    ks->act = act_avx2;
    ks->softmax_row = softmax_row_avx2;
    ks->layernorm_row = layernorm_row_avx2;
    ks->layernorm_nchw = layernorm_nchw_avx2;
    ks->cvt = cvt_avx2;
    return 1;
}
