/*
 * kernels/set_neon.c - the AArch64 NEON kernel set: the 8 x 12 SGEMM
 * micro-kernel (gemm_ukr.h, three q-register vectors per row), the A /
 * transposed-B panel packer, the vector math, bias + activation epilogue and
 * few-row dot products (kernels/vec.h at 4 lanes), depthwise convolution on
 * padded phase-split planes, softmax and LayerNorm, and the bf16 / f16 / int8
 * weight conversions.  The same algorithms as the AVX2 set at 4 lanes.
 * NEON is part of the AArch64 base ISA: no flags, no run-time check.  On
 * other targets this file compiles to nothing.
 */
#include "kernels/set_neon.h"
#include "kernels/qmat.h"
#include "kernels/set_portable.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#include <math.h>
#include <string.h>

typedef float32x4_t vf;

/* ---- GEMM micro-kernel: 8 rows x 12 columns, 24 accumulators ----
 * The 8 A values of a k step come in two vector loads and feed by-element
 * FMAs (lane broadcasts): 24 accumulators + 3 B vectors + 2 A vectors fit
 * the 32 vector registers. */
#define VF float32x4_t
#define VW 4
#define UKR_MR 8
#define UKR_NV3
#define UKR_NAME ukr_neon_8x12
#define VLOAD vld1q_f32
#define VSTORE vst1q_f32
#define VBCAST vld1q_dup_f32
#define UKR_ALANE(v, l) vdupq_n_f32((v)[l])
#define VFMA(a, b, c) vfmaq_f32(c, a, b)
#define VMUL vmulq_f32
#define VZERO() vdupq_n_f32(0.0f)
#define VSET1 vdupq_n_f32
#include "kernels/gemm_ukr.h"

/* ---- packing rows of a row-major matrix (A, or B^T) into MR-row panels ----
 * 4 rows x 4 columns at a time through an in-register transpose; rows past
 * mr read as zero. */
static inline void transpose4(vf r[4]) {
    float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
    float64x2_t t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
    float64x2_t t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
    float64x2_t t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(t0, t2));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(t1, t3));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(t0, t2));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(t1, t3));
}

static void pack_a_rows_neon(const float *a, int lda, int mr, int MR, int kc, float *dst) {
    int p = 0;
    if (MR <= 32) {
        for (; p + 4 <= kc; p += 4) {
            vf r[8][4];
            int ng = (MR + 3) / 4;
            for (int gi = 0; gi < ng; gi++) {
                for (int i = 0; i < 4; i++) {
                    int row = gi * 4 + i;
                    r[gi][i] = row < mr ? vld1q_f32(a + (size_t)row * lda + p) : vdupq_n_f32(0.0f);
                }
                transpose4(r[gi]);
            }
            /* 4-wide stores in ascending order: a short last group spills into
             * the next column's first rows, which the next store overwrites
             * (the panel buffer has slack after its end). */
            float *d = dst + (size_t)p * MR;
            for (int q = 0; q < 4; q++)
                for (int gi = 0; gi < ng; gi++) vst1q_f32(d + (size_t)q * MR + gi * 4, r[gi][q]);
        }
    }
    for (; p < kc; p++)
        for (int i = 0; i < MR; i++) dst[(size_t)p * MR + i] = i < mr ? a[(size_t)i * lda + p] : 0.0f;
}

/* ---- partial vectors: NEON has no masked loads, so the first n < 4 lanes
 * go through a small buffer (missing lanes read as zero) ---- */
static inline vf load_tail(const float *p, int n) {
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < n; i++) t[i] = p[i];
    return vld1q_f32(t);
}

static inline void store_tail(float *p, int n, vf v) {
    float t[4];
    vst1q_f32(t, v);
    for (int i = 0; i < n; i++) p[i] = t[i];
}

/* ---- vector math, epilogue, dot products (kernels/vec.h) at 4 lanes ---- */
#define VM uint32x4_t
#define VTM int
#define VADD vaddq_f32
#define VSUB vsubq_f32
#define VDIV vdivq_f32
#define VMAX vmaxq_f32
#define VMIN vminq_f32
#define VFNMA(a, b, c) vfmsq_f32(c, a, b)   /* c - a * b */
#define VABS vabsq_f32
#define VSHL23(v) vreinterpretq_f32_s32(vshlq_n_s32(vreinterpretq_s32_f32(v), 23))
/* integer min / max / add on the float bits (v_gelu's clamps, 2^n scaling) */
#define VMINI(a, b) vreinterpretq_f32_s32(vminq_s32(vreinterpretq_s32_f32(a), vreinterpretq_s32_f32(b)))
#define VMINU(a, b) vreinterpretq_f32_u32(vminq_u32(vreinterpretq_u32_f32(a), vreinterpretq_u32_f32(b)))
#define VMAXI(a, b) vreinterpretq_f32_s32(vmaxq_s32(vreinterpretq_s32_f32(a), vreinterpretq_s32_f32(b)))
#define VADDI(a, b) vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(a), vreinterpretq_s32_f32(b)))
#define VCMP_LT vcltq_f32
#define VCMP_GE vcgeq_f32
#define VCMP_UNORD(a) vmvnq_u32(vceqq_f32(a, a))
#define VSEL(m, f, t) vbslq_f32(m, t, f)   /* m ? t : f */
#define VTAIL(rem) (rem)
#define VLOAD_TAIL(p, m) load_tail(p, m)
#define VSTORE_TAIL(p, m, v) store_tail(p, m, v)
#define EPI_NAME epi_neon
#define ACT_NAME act_neon
#define GEMV_NAME gemv_neon
#define VHSUM vaddvq_f32
#include "kernels/vec.h"

/* ---- depthwise convolution of one plane ----
 * As in the AVX2 set: the input is copied once into sw zero-padded planes
 * split by column phase (plane s, row r, column j holds padded input
 * (r, j * sw + s)), so tap kx of output column ox reads plane kx % sw at
 * column ox + kx / sw, contiguous for every stride.  Two output rows x nv
 * vectors (nv = 1, 2, 4) share each loaded input vector. */
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
                vf w0 = vdupq_n_f32(k0[kx]), w1 = vdupq_n_f32(k1[kx]);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) {
                    vf in = vld1q_f32(src + 4 * v);
                    a0[v] = vfmaq_f32(a0[v], w0, in);
                    a1[v] = vfmaq_f32(a1[v], w1, in);
                }
            }
        } else if (ky0 < kh) {
            for (int kx = 0; kx < kw; kx++) {
                const float *src = rowp + toff[kx];
                vf w0 = vdupq_n_f32(k0[kx]);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) a0[v] = vfmaq_f32(a0[v], w0, vld1q_f32(src + 4 * v));
            }
        } else if (ky1 >= 0 && y1) {
            for (int kx = 0; kx < kw; kx++) {
                const float *src = rowp + toff[kx];
                vf w1 = vdupq_n_f32(k1[kx]);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) a1[v] = vfmaq_f32(a1[v], w1, vld1q_f32(src + 4 * v));
            }
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        int rem = left - 4 * v;
        if (rem >= 4) {
            vst1q_f32(y0 + 4 * v, a0[v]);
            if (y1) vst1q_f32(y1 + 4 * v, a1[v]);
        } else if (rem > 0) {
            store_tail(y0 + 4 * v, rem, a0[v]);
            if (y1) store_tail(y1 + 4 * v, rem, a1[v]);
        }
    }
}

static void dw_neon(const float *x, int h, int w, const float *k, const mc_conv2d_desc *d, float bias,
                    mc_act act, float *y, float *scratch) {
    const int kh = d->kh, kw = d->kw, sh = d->sh, sw = d->sw, ph = d->ph, pw = d->pw;
    const int oh = mc_conv_out(h, kh, sh, ph), ow = mc_conv_out(w, kw, sw, pw);
    if (kw > 64) {   /* wider than any real kernel: portable path */
        mc_kset ps;
        mc_kset_portable(&ps);
        ps.dw(x, h, w, k, d, bias, act, y, scratch);
        return;
    }
    const int rows = h + 2 * ph + sh;   /* + sh zero rows: read by a discarded last odd row */
    const size_t wq = (size_t)((ow + 3) & ~3) + (size_t)(kw - 1) / sw + 4;
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
                for (; j + 5 <= jhi; j += 4)   /* even elements of 8 (all 8 inside the row) */
                    vst1q_f32(dst + j, vld2q_f32(src + 2 * j).val[0]);
                for (; j < jhi; j++) dst[j] = src[(size_t)j * 2];
            } else {
                for (int j = jlo; j < jhi; j++) dst[j] = src[(size_t)j * sw];
            }
            memset(dst + jhi, 0, (wq - (size_t)jhi) * sizeof(float));
        }
    }
    /* tap kx reads scratch + toff[kx] + row offset + ox */
    size_t toff[64];
    for (int kx = 0; kx < kw; kx++) toff[kx] = (size_t)(kx % sw) * plane + (size_t)(kx / sw);
    const vf vb = vdupq_n_f32(bias);
    for (int oy = 0; oy < oh; oy += 2) {
        float *y0 = y + (size_t)oy * ow, *y1 = oy + 1 < oh ? y0 + ow : NULL;
        const float *base = scratch + (size_t)oy * sh * wq;
        int ox = 0;
        for (; ox + 16 <= ow; ox += 16) dw_rows2(base + ox, toff, k, kh, kw, sh, wq, 4, vb, y0 + ox, y1 ? y1 + ox : NULL, ow - ox);
        for (; ox + 8 <= ow; ox += 8) dw_rows2(base + ox, toff, k, kh, kw, sh, wq, 2, vb, y0 + ox, y1 ? y1 + ox : NULL, ow - ox);
        for (; ox < ow; ox += 4) dw_rows2(base + ox, toff, k, kh, kw, sh, wq, 1, vb, y0 + ox, y1 ? y1 + ox : NULL, ow - ox);
        if (act != MC_ACT_NONE) {
            epi_neon(y0, 0, 1, ow, NULL, NULL, act);
            if (y1) epi_neon(y1, 0, 1, ow, NULL, NULL, act);
        }
    }
}

/* ---- softmax and LayerNorm ---- */

static void softmax_row_neon(float *x, int n) {
    if (n <= 0) return;
    vf vm = vdupq_n_f32(-INFINITY);
    int j = 0;
    for (; j + 4 <= n; j += 4) vm = vmaxq_f32(vm, vld1q_f32(x + j));
    float mx = vmaxvq_f32(vm);
    for (int i = j; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    vf vmx = vdupq_n_f32(mx), vs = vdupq_n_f32(0.0f);
    for (j = 0; j + 4 <= n; j += 4) {
        vf e = v_exp(vsubq_f32(vld1q_f32(x + j), vmx));
        vst1q_f32(x + j, e);
        vs = vaddq_f32(vs, e);
    }
    if (j < n) {   /* lanes past n: exp(0 - max) replaced by 0 before the sum */
        vf e = v_exp(vsubq_f32(load_tail(x + j, n - j), vmx));
        uint32x4_t live = vcltq_s32(vld1q_s32((const int32_t[4]){0, 1, 2, 3}), vdupq_n_s32(n - j));
        e = vbslq_f32(live, e, vdupq_n_f32(0.0f));
        store_tail(x + j, n - j, e);
        vs = vaddq_f32(vs, e);
    }
    float inv = 1.0f / vaddvq_f32(vs);
    vf vinv = vdupq_n_f32(inv);
    for (j = 0; j + 4 <= n; j += 4) vst1q_f32(x + j, vmulq_f32(vld1q_f32(x + j), vinv));
    for (; j < n; j++) x[j] *= inv;
}

static void layernorm_row_neon(const float *x, int dim, const float *g, const float *b, float eps,
                               float *y) {
    vf s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
    int j = 0;
    for (; j + 8 <= dim; j += 8) {
        s0 = vaddq_f32(s0, vld1q_f32(x + j));
        s1 = vaddq_f32(s1, vld1q_f32(x + j + 4));
    }
    double sum = (double)vaddvq_f32(vaddq_f32(s0, s1));
    for (; j < dim; j++) sum += x[j];
    float mean = (float)(sum / dim);
    vf vm = vdupq_n_f32(mean);
    s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
    for (j = 0; j + 8 <= dim; j += 8) {
        vf d0 = vsubq_f32(vld1q_f32(x + j), vm), d1 = vsubq_f32(vld1q_f32(x + j + 4), vm);
        s0 = vfmaq_f32(s0, d0, d0);
        s1 = vfmaq_f32(s1, d1, d1);
    }
    double var = (double)vaddvq_f32(vaddq_f32(s0, s1));
    for (; j < dim; j++) { double dd = (double)x[j] - mean; var += dd * dd; }
    var /= dim;
    float rstd = (float)(1.0 / sqrt(var + eps));
    vf vr = vdupq_n_f32(rstd);
    for (j = 0; j + 4 <= dim; j += 4) {
        vf v = vmulq_f32(vsubq_f32(vld1q_f32(x + j), vm), vr);
        if (g) v = vmulq_f32(v, vld1q_f32(g + j));
        if (b) v = vaddq_f32(v, vld1q_f32(b + j));
        vst1q_f32(y + j, v);
    }
    for (; j < dim; j++) {
        float v = (x[j] - mean) * rstd;
        if (g) v *= g[j];
        if (b) v += b[j];
        y[j] = v;
    }
}

/* Pixels [p0, p1) of one image in chunks of 32 (8 vectors, 2 cache lines per
 * channel row).  Two passes for mean and variance, one to write. */
static void layernorm_nchw_neon(const float *x, int c, int hw, int p0, int p1, const float *g,
                                const float *b, float eps, float *y) {
    const vf ve = vdupq_n_f32(eps), vinvc = vdupq_n_f32(1.0f / c);
    for (int p = p0; p < p1; p += 32) {
        int left = p1 - p;
        if (left >= 32) {
            const float *xp = x + p;
            float *yp = y + p;
            vf acc[8], mu[8], rs[8];
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) acc[v] = vdupq_n_f32(0.0f);
            for (int ch = 0; ch < c; ch++) {
                const float *r = xp + (size_t)ch * hw;
#pragma GCC unroll 8
                for (int v = 0; v < 8; v++) acc[v] = vaddq_f32(acc[v], vld1q_f32(r + 4 * v));
            }
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) mu[v] = vmulq_f32(acc[v], vinvc), acc[v] = vdupq_n_f32(0.0f);
            for (int ch = 0; ch < c; ch++) {
                const float *r = xp + (size_t)ch * hw;
#pragma GCC unroll 8
                for (int v = 0; v < 8; v++) {
                    vf dd = vsubq_f32(vld1q_f32(r + 4 * v), mu[v]);
                    acc[v] = vfmaq_f32(acc[v], dd, dd);
                }
            }
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++)
                rs[v] = vdivq_f32(vdupq_n_f32(1.0f), vsqrtq_f32(vfmaq_f32(ve, acc[v], vinvc)));
            for (int ch = 0; ch < c; ch++) {
                const float *r = xp + (size_t)ch * hw;
                float *o = yp + (size_t)ch * hw;
                vf gv = vdupq_n_f32(g ? g[ch] : 1.0f), bv = vdupq_n_f32(b ? b[ch] : 0.0f);
#pragma GCC unroll 8
                for (int v = 0; v < 8; v++) {
                    vf a0 = vmulq_f32(vsubq_f32(vld1q_f32(r + 4 * v), mu[v]), rs[v]);
                    vst1q_f32(o + 4 * v, vfmaq_f32(bv, a0, gv));
                }
            }
            continue;
        }
        /* last partial chunk: one vector (or partial vector) at a time */
        for (int q = p; q < p1; q += 4) {
            int nq = p1 - q > 4 ? 4 : p1 - q;
            const float *xp = x + q;
            float *yp = y + q;
            vf s0 = vdupq_n_f32(0.0f);
            for (int ch = 0; ch < c; ch++) s0 = vaddq_f32(s0, load_tail(xp + (size_t)ch * hw, nq));
            vf mu0 = vmulq_f32(s0, vinvc), v0 = vdupq_n_f32(0.0f);
            for (int ch = 0; ch < c; ch++) {
                vf d0 = vsubq_f32(load_tail(xp + (size_t)ch * hw, nq), mu0);
                v0 = vfmaq_f32(v0, d0, d0);
            }
            vf rs0 = vdivq_f32(vdupq_n_f32(1.0f), vsqrtq_f32(vfmaq_f32(ve, v0, vinvc)));
            for (int ch = 0; ch < c; ch++) {
                vf gv = vdupq_n_f32(g ? g[ch] : 1.0f), bv = vdupq_n_f32(b ? b[ch] : 0.0f);
                vf a0 = vmulq_f32(vsubq_f32(load_tail(xp + (size_t)ch * hw, nq), mu0), rs0);
                store_tail(yp + (size_t)ch * hw, nq, vfmaq_f32(bv, a0, gv));
            }
        }
    }
}

/* ---- reduced-precision weights to float32 (8 at a time): bf16 by a 16-bit
 * shift, f16 by the hardware conversion (exact), int8 by sign extension,
 * int -> float and the row scale.  Bit-identical to mc_cvt_ref (NaNs: NaN). */
static void cvt_neon(mc_wtype t, const void *src, int n, float scale, float *dst) {
    int j = 0;
    if (t == MC_WT_BF16) {
        const uint16_t *s = src;
        for (; j + 8 <= n; j += 8) {
            uint16x8_t v = vld1q_u16(s + j);
            vst1q_f32(dst + j, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16)));
            vst1q_f32(dst + j + 4, vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)));
        }
    } else if (t == MC_WT_F16) {
        const uint16_t *s = src;
        for (; j + 8 <= n; j += 8) {
            vst1q_f32(dst + j, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(s + j))));
            vst1q_f32(dst + j + 4, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(s + j + 4))));
        }
    } else if (t == MC_WT_I8) {
        const int8_t *s = src;
        vf vs = vdupq_n_f32(scale);
        for (; j + 8 <= n; j += 8) {
            int16x8_t v = vmovl_s8(vld1_s8(s + j));
            vst1q_f32(dst + j, vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(v))), vs));
            vst1q_f32(dst + j + 4, vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(v)), vs));
        }
    }
    if (j < n) mc_cvt_ref(t, (const char *)src + (size_t)j * (t == MC_WT_I8 ? 1 : t == MC_WT_F32 ? 4 : 2), n - j, scale,
                          dst + j);
}

int mc_kset_neon(mc_kset *ks) {
    ks->name = "neon";
    ks->mr = 8, ks->nr = 12;
    ks->mc = 8 * 16, ks->kc = 256, ks->nc = 12 * 128;
    ks->ukr = ukr_neon_8x12;
    ks->pack_a_rows = pack_a_rows_neon;
    ks->pack_b_cols = NULL;
    ks->epi = epi_neon;
    ks->gemv = gemv_neon;
    ks->dw = dw_neon;
    ks->act = act_neon;
    ks->softmax_row = softmax_row_neon;
    ks->layernorm_row = layernorm_row_neon;
    ks->layernorm_nchw = layernorm_nchw_neon;
    ks->cvt = cvt_neon;
    ks->conv3s2 = NULL;
    return 1;
}

#endif /* __aarch64__ */
