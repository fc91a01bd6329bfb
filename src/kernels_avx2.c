/*
 * kernels_avx2.c - the AVX2 + FMA kernel set: the 6 x 16 SGEMM micro-kernel
 * (gemm_ukr.h), vectorized exp / sigmoid / erfc-based GELU, activation and
 * bias epilogues, depthwise convolution on padded phase-split planes,
 * softmax and LayerNorm rows.  Compiled with -mavx2 -mfma; used only when
 * mc_cpu_level() says so (the AVX-512 set reuses everything but the GEMM
 * micro-kernel).
 */
#include "gemm.h"

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
#include "gemm_ukr.h"

/* ---- packing A (rows of a row-major matrix) into MR-row panels ----
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
    if (MR > 16) {   /* not a shape the kernel sets use */
        for (int p = 0; p < kc; p++)
            for (int i = 0; i < MR; i++) dst[(size_t)p * MR + i] = i < mr ? a[(size_t)i * lda + p] : 0.0f;
        return;
    }
    int p = 0;
    for (; p + 8 <= kc; p += 8) {
        vf r[2][8];
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

/* exp(x): range reduction x = n ln2 + r, |r| <= ln2 / 2, degree-7 Taylor
 * polynomial (truncation < 1e-8 relative), 2^n built in the exponent field.
 * Below -87.34 gives 0, NaN stays NaN. */
static inline vf v_exp(vf x) {
    const vf lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.37626f);
    vf nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    vf under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    vf xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    vf n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vf r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    /* Estrin's scheme: short dependency chains (these run latency-bound) */
    vf r2 = _mm256_mul_ps(r, r), r4 = _mm256_mul_ps(r2, r2);
    vf p01 = _mm256_add_ps(r, _mm256_set1_ps(1.0f));
    vf p23 = _mm256_fmadd_ps(r, _mm256_set1_ps(1.0f / 6), _mm256_set1_ps(0.5f));
    vf p45 = _mm256_fmadd_ps(r, _mm256_set1_ps(1.0f / 120), _mm256_set1_ps(1.0f / 24));
    vf p67 = _mm256_fmadd_ps(r, _mm256_set1_ps(1.0f / 5040), _mm256_set1_ps(1.0f / 720));
    vf p = _mm256_fmadd_ps(_mm256_fmadd_ps(p67, r2, p45), r4, _mm256_fmadd_ps(p23, r2, p01));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    vf y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    y = _mm256_andnot_ps(under, y);
    return _mm256_blendv_ps(y, _mm256_add_ps(x, x), nan);
}

static inline vf v_sigmoid(vf x) {
    const vf one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, v_exp(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* GELU(x) = x/2 * erfc(-x / sqrt 2), erfc from the Chebyshev-fitted form
 * erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0, whose fractional
 * error is below 1.2e-7 for all z; erfc(-z) = 2 - erfc(z).  No cancellation
 * for negative x, where the output is small. */
static inline vf v_gelu(vf x) {
    vf z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    vf az = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
    vf den = _mm256_fmadd_ps(az, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f));
    vf t = _mm256_rcp_ps(den);   /* + one Newton step: ~23 bits */
    t = _mm256_mul_ps(t, _mm256_fnmadd_ps(den, t, _mm256_set1_ps(2.0f)));
    vf t2 = _mm256_mul_ps(t, t), t4 = _mm256_mul_ps(t2, t2), t8 = _mm256_mul_ps(t4, t4);
    vf p01 = _mm256_fmadd_ps(t, _mm256_set1_ps(1.00002368f), _mm256_set1_ps(-1.26551223f));
    vf p23 = _mm256_fmadd_ps(t, _mm256_set1_ps(0.09678418f), _mm256_set1_ps(0.37409196f));
    vf p45 = _mm256_fmadd_ps(t, _mm256_set1_ps(0.27886807f), _mm256_set1_ps(-0.18628806f));
    vf p67 = _mm256_fmadd_ps(t, _mm256_set1_ps(1.48851587f), _mm256_set1_ps(-1.13520398f));
    vf p89 = _mm256_fmadd_ps(t, _mm256_set1_ps(0.17087277f), _mm256_set1_ps(-0.82215223f));
    vf q03 = _mm256_fmadd_ps(p23, t2, p01), q47 = _mm256_fmadd_ps(p67, t2, p45);
    vf p = _mm256_fmadd_ps(p89, t8, _mm256_fmadd_ps(q47, t4, q03));
    vf r = _mm256_mul_ps(t, v_exp(_mm256_fnmadd_ps(az, az, p)));   /* erfc(|z|) */
    vf pos = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GE_OQ);
    vf e = _mm256_blendv_ps(r, _mm256_sub_ps(_mm256_set1_ps(2.0f), r), pos);
    return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), e);
}

/* 0.5 x (1 + tanh u) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3). */
static inline vf v_gelu_tanh(vf x) {
    vf x2 = _mm256_mul_ps(x, x);
    vf u = _mm256_mul_ps(x, _mm256_fmadd_ps(x2, _mm256_set1_ps(0.044715f), _mm256_set1_ps(1.0f)));
    return _mm256_mul_ps(x, v_sigmoid(_mm256_mul_ps(u, _mm256_set1_ps(2.0f * 0.7978845608028654f))));
}

static inline vf v_act(vf x, mc_act act) {
    switch (act) {
    case MC_ACT_RELU: return _mm256_max_ps(x, _mm256_setzero_ps());
    case MC_ACT_GELU: return v_gelu(x);
    case MC_ACT_GELU_TANH: return v_gelu_tanh(x);
    case MC_ACT_QUICK_GELU: return _mm256_mul_ps(x, v_sigmoid(_mm256_mul_ps(x, _mm256_set1_ps(1.702f))));
    case MC_ACT_SIGMOID: return v_sigmoid(x);
    default: return x;
    }
}

/* x[0..n) = act(x + br + bcol[j]) (bcol may be NULL); the act switch is
 * hoisted and four vectors go per step so the long polynomial chains of
 * independent vectors overlap. */
#define ROW_LOOP(ACT)                                                                    \
    do {                                                                                 \
        int j = 0;                                                                       \
        for (; j + 32 <= n; j += 32) {                                                   \
            vf v0 = _mm256_add_ps(_mm256_loadu_ps(x + j), vbr);                          \
            vf v1 = _mm256_add_ps(_mm256_loadu_ps(x + j + 8), vbr);                      \
            vf v2 = _mm256_add_ps(_mm256_loadu_ps(x + j + 16), vbr);                     \
            vf v3 = _mm256_add_ps(_mm256_loadu_ps(x + j + 24), vbr);                     \
            if (bcol) {                                                                  \
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bcol + j));                       \
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bcol + j + 8));                   \
                v2 = _mm256_add_ps(v2, _mm256_loadu_ps(bcol + j + 16));                  \
                v3 = _mm256_add_ps(v3, _mm256_loadu_ps(bcol + j + 24));                  \
            }                                                                            \
            _mm256_storeu_ps(x + j, ACT(v0));                                            \
            _mm256_storeu_ps(x + j + 8, ACT(v1));                                        \
            _mm256_storeu_ps(x + j + 16, ACT(v2));                                       \
            _mm256_storeu_ps(x + j + 24, ACT(v3));                                       \
        }                                                                                \
        for (; j + 8 <= n; j += 8) {                                                     \
            vf v = _mm256_add_ps(_mm256_loadu_ps(x + j), vbr);                           \
            if (bcol) v = _mm256_add_ps(v, _mm256_loadu_ps(bcol + j));                   \
            _mm256_storeu_ps(x + j, ACT(v));                                             \
        }                                                                                \
        if (j < n) {                                                                     \
            __m256i m = tail_mask(n - j);                                                \
            vf v = _mm256_add_ps(_mm256_maskload_ps(x + j, m), vbr);                     \
            if (bcol) v = _mm256_add_ps(v, _mm256_maskload_ps(bcol + j, m));             \
            _mm256_maskstore_ps(x + j, m, ACT(v));                                       \
        }                                                                                \
    } while (0)

#define A_RELU(v) _mm256_max_ps(v, _mm256_setzero_ps())
#define A_QGELU(v) _mm256_mul_ps(v, v_sigmoid(_mm256_mul_ps(v, _mm256_set1_ps(1.702f))))
#define A_NONE(v) (v)

static void row_bias_act(float *x, int n, float br, const float *bcol, mc_act act) {
    vf vbr = _mm256_set1_ps(br);
    switch (act) {
    case MC_ACT_RELU: ROW_LOOP(A_RELU); break;
    case MC_ACT_GELU: ROW_LOOP(v_gelu); break;
    case MC_ACT_GELU_TANH: ROW_LOOP(v_gelu_tanh); break;
    case MC_ACT_QUICK_GELU: ROW_LOOP(A_QGELU); break;
    case MC_ACT_SIGMOID: ROW_LOOP(v_sigmoid); break;
    default: ROW_LOOP(A_NONE); break;
    }
}

/* The epilogue over a tile: one switch, then the rows (no call per row).  A
 * full 16-wide tile goes two rows (four independent vectors) per step. */
#define EPI_ROWS(ACT)                                                                    \
    do {                                                                                 \
        int i0 = 0;                                                                      \
        if (n == 16) {                                                                   \
            vf b0 = bcol ? _mm256_loadu_ps(bcol) : _mm256_setzero_ps();                  \
            vf b1 = bcol ? _mm256_loadu_ps(bcol + 8) : _mm256_setzero_ps();              \
            for (; i0 + 2 <= mr; i0 += 2) {                                              \
                float *x0 = c + i0 * ldc, *x1 = x0 + ldc;                                \
                vf r0 = _mm256_add_ps(b0, _mm256_set1_ps(brow ? brow[i0] : 0.0f));       \
                vf r1 = _mm256_add_ps(b1, _mm256_set1_ps(brow ? brow[i0] : 0.0f));       \
                vf s0 = _mm256_add_ps(b0, _mm256_set1_ps(brow ? brow[i0 + 1] : 0.0f));   \
                vf s1 = _mm256_add_ps(b1, _mm256_set1_ps(brow ? brow[i0 + 1] : 0.0f));   \
                vf v0 = _mm256_add_ps(_mm256_loadu_ps(x0), r0);                          \
                vf v1 = _mm256_add_ps(_mm256_loadu_ps(x0 + 8), r1);                      \
                vf v2 = _mm256_add_ps(_mm256_loadu_ps(x1), s0);                          \
                vf v3 = _mm256_add_ps(_mm256_loadu_ps(x1 + 8), s1);                      \
                _mm256_storeu_ps(x0, ACT(v0));                                           \
                _mm256_storeu_ps(x0 + 8, ACT(v1));                                       \
                _mm256_storeu_ps(x1, ACT(v2));                                           \
                _mm256_storeu_ps(x1 + 8, ACT(v3));                                       \
            }                                                                            \
        }                                                                                \
        for (int i = i0; i < mr; i++) {                                                  \
            float *x = c + i * ldc;                                                      \
            vf vbr = _mm256_set1_ps(brow ? brow[i] : 0.0f);                              \
            ROW_LOOP(ACT);                                                               \
        }                                                                                \
    } while (0)

static void epi_avx2(float *c, size_t ldc, int mr, int n, const float *brow, const float *bcol,
                     mc_act act) {
    switch (act) {
    case MC_ACT_RELU: EPI_ROWS(A_RELU); break;
    case MC_ACT_GELU: EPI_ROWS(v_gelu); break;
    case MC_ACT_GELU_TANH: EPI_ROWS(v_gelu_tanh); break;
    case MC_ACT_QUICK_GELU: EPI_ROWS(A_QGELU); break;
    case MC_ACT_SIGMOID: EPI_ROWS(v_sigmoid); break;
    default: EPI_ROWS(A_NONE); break;
    }
}

static void act_avx2(float *x, size_t n, mc_act act) {
    if (act == MC_ACT_NONE) return;
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        row_bias_act(x, chunk, 0.0f, NULL, act);
        x += chunk;
        n -= (size_t)chunk;
    }
}

/* ---- depthwise convolution of one plane ----
 * The input is copied once into sw zero-padded planes split by column phase:
 * plane s, row r, column j holds padded input (r, j * sw + s).  Output column
 * ox, tap kx then reads plane kx % sw at column ox + kx / sw: contiguous for
 * every stride, with no bounds tests in the inner loop. */
static void dw_avx2(const float *x, int h, int w, const float *k, const mc_conv2d_desc *d, float bias,
                    mc_act act, float *y, float *scratch) {
    const int kh = d->kh, kw = d->kw, sh = d->sh, sw = d->sw, ph = d->ph, pw = d->pw;
    const int oh = mc_conv_out(h, kh, sh, ph), ow = mc_conv_out(w, kw, sw, pw);
    const int rows = h + 2 * ph;
    const size_t wq = (size_t)((ow + 7) & ~7) + (size_t)(kw - 1) / sw + 8;
    const size_t plane = (size_t)rows * wq;
    for (int s = 0; s < sw; s++) {
        float *pl = scratch + (size_t)s * plane;
        /* columns j with ix = j * sw + s - pw in [0, w) */
        int jlo = pw - s > 0 ? (pw - s + sw - 1) / sw : 0;
        int jhi = (w - 1 + pw - s) >= 0 ? (w - 1 + pw - s) / sw + 1 : 0;   /* exclusive */
        if (jhi > (int)wq) jhi = (int)wq;
        if (jlo > jhi) jlo = jhi;
        for (int r = 0; r < rows; r++) {
            float *dst = pl + (size_t)r * wq;
            int iy = r - ph;
            if (iy < 0 || iy >= h || jlo >= jhi) { memset(dst, 0, wq * sizeof(float)); continue; }
            const float *src = x + (size_t)iy * w + (s - pw);
            memset(dst, 0, (size_t)jlo * sizeof(float));
            if (sw == 1) {
                memcpy(dst + jlo, src + jlo, (size_t)(jhi - jlo) * sizeof(float));
            } else if (sw == 2) {
                int j = jlo;
                for (; j + 8 <= jhi; j += 8) {   /* even elements of 16 */
                    vf lo = _mm256_loadu_ps(src + 2 * j), hi8 = _mm256_loadu_ps(src + 2 * j + 8);
                    vf ev = _mm256_shuffle_ps(lo, hi8, 0x88);   /* 0 2 8 10 | 4 6 12 14 */
                    ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xd8));
                    _mm256_storeu_ps(dst + j, ev);
                }
                for (; j < jhi; j++) dst[j] = src[(size_t)j * 2];
            } else {
                for (int j = jlo; j < jhi; j++) dst[j] = src[(size_t)j * sw];
            }
            memset(dst + jhi, 0, (wq - (size_t)jhi) * sizeof(float));
        }
    }
    /* tap kx reads scratch + toff[kx] + row offset + ox */
    size_t toff[64];
    if (kw > 64) {   /* wider than any real kernel: portable path */
        mc_kset ps;
        mc_kset_portable(&ps);
        ps.dw(x, h, w, k, d, bias, act, y, scratch);
        return;
    }
    for (int kx = 0; kx < kw; kx++) toff[kx] = (size_t)(kx % sw) * plane + (size_t)(kx / sw);
    const vf vb = _mm256_set1_ps(bias);
    for (int oy = 0; oy < oh; oy++) {
        float *yr = y + (size_t)oy * ow;
        int ox = 0;
        for (; ox + 32 <= ow; ox += 32) {
            vf a0 = vb, a1 = vb, a2 = vb, a3 = vb;
            for (int ky = 0; ky < kh; ky++) {
                const float *kr = k + ky * kw;
                size_t roff = (size_t)(oy * sh + ky) * wq + ox;
                for (int kx = 0; kx < kw; kx++) {
                    const float *src = scratch + toff[kx] + roff;
                    vf wv = _mm256_broadcast_ss(kr + kx);
                    a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src), a0);
                    a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + 8), a1);
                    a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + 16), a2);
                    a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + 24), a3);
                }
            }
            _mm256_storeu_ps(yr + ox, a0);
            _mm256_storeu_ps(yr + ox + 8, a1);
            _mm256_storeu_ps(yr + ox + 16, a2);
            _mm256_storeu_ps(yr + ox + 24, a3);
        }
        for (; ox < ow; ox += 8) {
            vf a0 = vb, a1 = _mm256_setzero_ps();
            for (int ky = 0; ky < kh; ky++) {
                const float *kr = k + ky * kw;
                size_t roff = (size_t)(oy * sh + ky) * wq + ox;
                int kx = 0;
                for (; kx + 1 < kw; kx += 2) {
                    a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(kr + kx),
                                         _mm256_loadu_ps(scratch + toff[kx] + roff), a0);
                    a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(kr + kx + 1),
                                         _mm256_loadu_ps(scratch + toff[kx + 1] + roff), a1);
                }
                if (kx < kw)
                    a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(kr + kx),
                                         _mm256_loadu_ps(scratch + toff[kx] + roff), a0);
            }
            a0 = _mm256_add_ps(a0, a1);
            if (ox + 8 <= ow) _mm256_storeu_ps(yr + ox, a0);
            else _mm256_maskstore_ps(yr + ox, tail_mask(ow - ox), a0);
        }
        if (act != MC_ACT_NONE) row_bias_act(yr, ow, 0.0f, NULL, act);
    }
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

/* Pixels [p0, p1) of one image, 8 pixels per vector, 2 vectors at a time. */
static void layernorm_nchw_avx2(const float *x, int c, int hw, int p0, int p1, const float *g,
                                const float *b, float eps, float *y) {
    const vf ve = _mm256_set1_ps(eps), vinvc = _mm256_set1_ps(1.0f / c), one = _mm256_set1_ps(1.0f);
    for (int p = p0; p < p1; p += 16) {
        int r0 = p1 - p, r1 = p1 - p - 8;
        __m256i m0 = tail_mask(r0 > 8 ? 8 : r0), m1 = tail_mask(r1 > 8 ? 8 : (r1 < 0 ? 0 : r1));
        const float *xp = x + p;
        float *yp = y + p;
        vf s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        for (int ch = 0; ch < c; ch++) {
            s0 = _mm256_add_ps(s0, _mm256_maskload_ps(xp + (size_t)ch * hw, m0));
            s1 = _mm256_add_ps(s1, _mm256_maskload_ps(xp + (size_t)ch * hw + 8, m1));
        }
        vf mu0 = _mm256_mul_ps(s0, vinvc), mu1 = _mm256_mul_ps(s1, vinvc);
        vf v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
        for (int ch = 0; ch < c; ch++) {
            vf d0 = _mm256_sub_ps(_mm256_maskload_ps(xp + (size_t)ch * hw, m0), mu0);
            vf d1 = _mm256_sub_ps(_mm256_maskload_ps(xp + (size_t)ch * hw + 8, m1), mu1);
            v0 = _mm256_fmadd_ps(d0, d0, v0);
            v1 = _mm256_fmadd_ps(d1, d1, v1);
        }
        vf rs0 = _mm256_div_ps(one, _mm256_sqrt_ps(_mm256_fmadd_ps(v0, vinvc, ve)));
        vf rs1 = _mm256_div_ps(one, _mm256_sqrt_ps(_mm256_fmadd_ps(v1, vinvc, ve)));
        for (int ch = 0; ch < c; ch++) {
            vf gv = _mm256_set1_ps(g ? g[ch] : 1.0f), bv = _mm256_set1_ps(b ? b[ch] : 0.0f);
            vf a0 = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xp + (size_t)ch * hw, m0), mu0), rs0);
            vf a1 = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xp + (size_t)ch * hw + 8, m1), mu1), rs1);
            _mm256_maskstore_ps(yp + (size_t)ch * hw, m0, _mm256_fmadd_ps(a0, gv, bv));
            _mm256_maskstore_ps(yp + (size_t)ch * hw + 8, m1, _mm256_fmadd_ps(a1, gv, bv));
        }
    }
}

int mc_kset_avx2(mc_kset *ks) {
    ks->name = "avx2";
    ks->mr = 6, ks->nr = 16;
    ks->mc = 6 * 20, ks->kc = 256, ks->nc = 16 * 128;
    ks->ukr = ukr_avx2_6x16;
    ks->pack_a_rows = mc_pack_a_rows_avx2;
    ks->epi = epi_avx2;
    ks->dw = dw_avx2;
    ks->act = act_avx2;
    ks->softmax_row = softmax_row_avx2;
    ks->layernorm_row = layernorm_row_avx2;
    ks->layernorm_nchw = layernorm_nchw_avx2;
    return 1;
}
