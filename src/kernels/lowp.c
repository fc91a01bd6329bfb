/*
 * kernels/lowp.c - reduced-precision weights (lowp.h): quantizing float32
 * matrices into mc_qmat, reading their rows back with the kernel set in use
 * (the scalar reference is in qmat.c), and the load-time lowering of a
 * tower's big matrices (or, for float32 models, their pre-packing for the GEMM).
 */
#include "kernels/lowp.h"
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/qmat.h"

#include <math.h>
#include <string.h>

size_t mc_wtype_size(mc_wtype t) {
    switch (t) {
    case MC_WT_BF16:
    case MC_WT_F16: return 2;
    case MC_WT_I8: return 1;
    default: return 4;
    }
}

const char *mc_wtype_name(mc_wtype t) {
    switch (t) {
    case MC_WT_BF16: return "bf16";
    case MC_WT_F16: return "f16";
    case MC_WT_I8: return "int8";
    default: return "f32";
    }
}

void mc_qmat_row(const mc_qmat *q, int64_t r, int64_t c0, int n, float *dst) {
    if (q->type == MC_WT_F32 && !q->data) { mc_qmat_unpack(q, r, 1, c0, n, dst, (size_t)n); return; }
    mc_kset_get()->cvt(q->type, mc_qmat_at(q, r, c0), n, q->scale ? q->scale[r] : 1.0f, dst);
}

int mc_qmat_make(mc_arena *a, mc_wtype t, const float *w, int64_t rows, int64_t cols, mc_qmat *out) {
    memset(out, 0, sizeof *out);
    size_t n, bytes;
    if (rows < 0 || cols < 0 || !mc_size_mul((size_t)rows, (size_t)cols, &n) ||
        !mc_size_mul(n, mc_wtype_size(t), &bytes))
        return 0;
    void *data = mc_arena_alloc(a, bytes ? bytes : 1);
    float *scale = t == MC_WT_I8 ? mc_arena_floats(a, rows ? (size_t)rows : 1) : NULL;
    if (!data || (t == MC_WT_I8 && !scale)) return 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *wr = w + (size_t)r * (size_t)cols;
        size_t off = (size_t)r * (size_t)cols;
        if (t == MC_WT_BF16 || t == MC_WT_F16) {
            uint16_t *d = (uint16_t *)data + off;
            for (int64_t c = 0; c < cols; c++)   /* f16: saturate rather than overflow to infinity */
                d[c] = t == MC_WT_BF16 ? mc_f32_to_bf16(wr[c]) : mc_f32_to_f16(fmaxf(-65504.0f, fminf(65504.0f, wr[c])));
        } else if (t == MC_WT_I8) {
            int8_t *d = (int8_t *)data + off;
            float mx = 0;
            for (int64_t c = 0; c < cols; c++) mx = fmaxf(mx, fabsf(wr[c]));
            float s = mx / 127.0f, inv = mx > 0 ? 127.0f / mx : 0.0f;
            scale[r] = s;
            for (int64_t c = 0; c < cols; c++) {
                float v = nearbyintf(wr[c] * inv);
                d[c] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
        } else {
            memcpy((float *)data + off, wr, (size_t)cols * sizeof(float));
        }
    }
    out->type = t;
    out->rows = rows;
    out->cols = cols;
    out->data = data;
    out->scale = scale;
    return 1;
}

int mc_lower_mat(mc_lower *L, const float *w, int64_t rows, int64_t cols, int use, mc_qmat *q) {
    if (L->status != MC_OK) return 0;
    if (L->type == MC_WT_F32) {   /* GEMM weights: held once, as a pre-packed copy */
        if (!L->pack || use == MC_USE_TABLE || rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX)
            return 0;
        const mc_kset *ks = mc_kset_get();
        size_t nf = mc_qmat_packed_floats(ks, use == MC_USE_LINEAR, rows, cols);
        float *dst = nf ? mc_arena_floats(L->arena, nf) : NULL;
        if (!dst) return 0;   /* no memory: the weights are packed per call as before */
        mc_qmat_pack(ks, use == MC_USE_LINEAR, w, rows, cols, dst, q);
        q->data = NULL;   /* the packed copy is the only one */
        L->n_mats++;
        L->bytes_packed += nf * sizeof(float);
        L->bytes_f32 += (size_t)rows * (size_t)cols * sizeof(float);
        mc_arena_release(L->arena, w, (size_t)rows * (size_t)cols * sizeof(float));
        return 1;
    }
    if (!mc_qmat_make(L->arena, L->type, w, rows, cols, q)) {
        L->status = mc_fail(L->err, MC_ERR_NOMEM, "out of memory for %s weights", mc_wtype_name(L->type));
        return 0;
    }
    size_t n = (size_t)rows * (size_t)cols;
    L->n_mats++;
    L->bytes_f32 += n * sizeof(float);
    L->bytes_lowp += n * mc_wtype_size(L->type) + (q->scale ? (size_t)rows * sizeof(float) : 0);
    mc_arena_release(L->arena, w, n * sizeof(float));
    return 1;
}
