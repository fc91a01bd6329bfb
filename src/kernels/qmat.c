/*
 * kernels/qmat.c - scalar readers of reduced-precision and pre-packed weight
 * matrices (qmat.h): the references for the kernel sets' conversions.
 * Element conversions are in core/core.c.
 */
#include "kernels/qmat.h"
#include "core/core.h"

#include <string.h>

void mc_cvt_ref(mc_wtype t, const void *src, int n, float scale, float *dst) {
    switch (t) {
    case MC_WT_BF16: {
        const uint16_t *s = src;
        for (int j = 0; j < n; j++) dst[j] = mc_bf16_to_f32(s[j]);
        break;
    }
    case MC_WT_F16: {
        const uint16_t *s = src;
        for (int j = 0; j < n; j++) dst[j] = mc_f16_to_f32(s[j]);
        break;
    }
    case MC_WT_I8: {
        const int8_t *s = src;
        for (int j = 0; j < n; j++) dst[j] = (float)s[j] * scale;
        break;
    }
    default:
        memcpy(dst, src, (size_t)(n > 0 ? n : 0) * sizeof(float));
    }
}

void mc_qmat_row_ref(const mc_qmat *q, int64_t r, int64_t c0, int n, float *dst) {
    if (q->type == MC_WT_F32 && !q->data) { mc_qmat_unpack(q, r, 1, c0, n, dst, (size_t)n); return; }
    mc_cvt_ref(q->type, mc_qmat_at(q, r, c0), n, q->scale ? q->scale[r] : 1.0f, dst);
}

void mc_qmat_unpack(const mc_qmat *q, int64_t r0, int nr, int64_t c0, int n, float *dst, size_t ldd) {
    const int64_t R = q->pk_r, KC = q->pk_kc, k = q->cols, end = c0 + n;
    const size_t rp = (size_t)((q->rows + R - 1) / R * R);
    for (int64_t p = c0; p < end;) {
        int64_t p0 = p / KC * KC, kb = k - p0 < KC ? k - p0 : KC;   /* the K block holding column p */
        int64_t pe = p0 + kb < end ? p0 + kb : end;
        for (int i = 0; i < nr; i++) {
            int64_t r = r0 + i;
            const float *src = q->packed + (size_t)p0 * rp + (size_t)(r / R * R) * (size_t)kb + (size_t)(r % R);
            float *d = dst + (size_t)i * ldd + (size_t)(p - c0);
            for (int64_t c = p; c < pe; c++) d[c - p] = src[(size_t)(c - p0) * (size_t)R];
        }
        p = pe;
    }
}
