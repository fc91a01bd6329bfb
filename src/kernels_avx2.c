/*
 * kernels_avx2.c - the AVX2 + FMA kernel set: the 6 x 16 SGEMM micro-kernel
 * (gemm_ukr.h), the A / transposed-B panel packer, the vector math, bias +
 * activation epilogue and few-row dot products (kernels_vec.h at 8 lanes),
 * depthwise convolution on padded phase-split planes, softmax and LayerNorm,
 * and the bf16 / f16 / int8 weight conversions.
 * Compiled with -mavx2 -mfma -mf16c; used only when mc_cpu_level() says so.  The
 * AVX-512 set replaces the micro-kernel and the kernels_vec.h parts and
 * reuses the rest.
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

/* ---- vector math, epilogue, dot products (kernels_vec.h) at 8 lanes ---- */
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
#include "kernels_vec.h"

/* ---- depthwise convolution of one plane ----
 * The input is copied once into sw zero-padded planes split by column phase:
 * plane s, row r, column j holds padded input (r, j * sw + s).  Output column
 * ox, tap kx then reads plane kx % sw at column ox + kx / sw: contiguous for
 * every stride, with no bounds tests in the inner loop. */
/* Two output rows x nv vectors (nv = 1, 2, 4): input rows oy*sh + rr,
 * rr < kh + sh, feed output row 0 through tap row rr and output row 1 through
 * tap row rr - sh, so each input vector is loaded once for both rows. */
static inline __attribute__((always_inline)) void dw_rows2(const float *base, const size_t *toff,
                                                          const float *k, int kh, int kw, int sh,
                                                          size_t wq, int nv, vf vb, float *y0,
                                                          float *y1, int left) {
    vf a0[4], a1[4];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) a0[v] = vb, a1[v] = vb;
    for (int rr = 0; rr < kh + sh; rr++) {
        const float *rowp = base + (size_t)rr * wq;
        int ky0 = rr, ky1 = rr - sh;
        const float *k0 = k + ky0 * kw, *k1 = k + ky1 * kw;
        if (ky0 < kh && ky1 >= 0) {
            for (int kx = 0; kx < kw; kx++) {
                const float *src = rowp + toff[kx];
                vf w0 = _mm256_broadcast_ss(k0 + kx), w1 = _mm256_broadcast_ss(k1 + kx);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) {
                    vf in = _mm256_loadu_ps(src + 8 * v);
                    a0[v] = _mm256_fmadd_ps(w0, in, a0[v]);
                    a1[v] = _mm256_fmadd_ps(w1, in, a1[v]);
                }
            }
        } else if (ky0 < kh) {
            for (int kx = 0; kx < kw; kx++) {
                const float *src = rowp + toff[kx];
                vf w0 = _mm256_broadcast_ss(k0 + kx);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) a0[v] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(src + 8 * v), a0[v]);
            }
        } else if (ky1 >= 0 && y1) {
            for (int kx = 0; kx < kw; kx++) {
                const float *src = rowp + toff[kx];
                vf w1 = _mm256_broadcast_ss(k1 + kx);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) a1[v] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(src + 8 * v), a1[v]);
            }
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        int rem = left - 8 * v;
        if (rem >= 8) {
            _mm256_storeu_ps(y0 + 8 * v, a0[v]);
            if (y1) _mm256_storeu_ps(y1 + 8 * v, a1[v]);
        } else if (rem > 0) {
            __m256i m = tail_mask(rem);
            _mm256_maskstore_ps(y0 + 8 * v, m, a0[v]);
            if (y1) _mm256_maskstore_ps(y1 + 8 * v, m, a1[v]);
        }
    }
}

static void dw_avx2(const float *x, int h, int w, const float *k, const mc_conv2d_desc *d, float bias,
                    mc_act act, float *y, float *scratch) {
    const int kh = d->kh, kw = d->kw, sh = d->sh, sw = d->sw, ph = d->ph, pw = d->pw;
    const int oh = mc_conv_out(h, kh, sh, ph), ow = mc_conv_out(w, kw, sw, pw);
    const int rows = h + 2 * ph + sh;   /* + sh zero rows: read by a discarded last odd row */
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
                for (; j + 9 <= jhi; j += 8) {   /* even elements of 16 (all 16 inside the row) */
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
    for (int oy = 0; oy < oh; oy += 2) {
        float *y0 = y + (size_t)oy * ow, *y1 = oy + 1 < oh ? y0 + ow : NULL;
        const float *base = scratch + (size_t)oy * sh * wq;
        int ox = 0;
        for (; ox + 32 <= ow; ox += 32) dw_rows2(base + ox, toff, k, kh, kw, sh, wq, 4, vb, y0 + ox, y1 ? y1 + ox : NULL, ow - ox);
        for (; ox + 16 <= ow; ox += 16) dw_rows2(base + ox, toff, k, kh, kw, sh, wq, 2, vb, y0 + ox, y1 ? y1 + ox : NULL, ow - ox);
        for (; ox < ow; ox += 8) dw_rows2(base + ox, toff, k, kh, kw, sh, wq, 1, vb, y0 + ox, y1 ? y1 + ox : NULL, ow - ox);
        if (act != MC_ACT_NONE) {
            epi_avx2(y0, 0, 1, ow, NULL, NULL, act);
            if (y1) epi_avx2(y1, 0, 1, ow, NULL, NULL, act);
        }
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
    ks->epi = epi_avx2;
    ks->gemv = gemv_avx2;
    ks->dw = dw_avx2;
    ks->act = act_avx2;
    ks->softmax_row = softmax_row_avx2;
    ks->layernorm_row = layernorm_row_avx2;
    ks->layernorm_nchw = layernorm_nchw_avx2;
    ks->cvt = cvt_avx2;
    return 1;
}
