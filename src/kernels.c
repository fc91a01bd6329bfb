/*
 * kernels.c - dispatch from the kernel entry points (kernels.h) to the
 * fastest implementation the CPU supports, and the kernels' thread count.
 */
#include "kernels.h"

static int g_threads;

void mc_kernels_set_threads(int n) { g_threads = n > 0 ? n : 0; }
int mc_kernels_get_threads(void) { return g_threads; }
const char *mc_kernels_name(void) { return "scalar"; }

void mc_act_apply(float *x, size_t n, mc_act act) { mc_act_apply_ref(x, n, act); }

void mc_linear(const float *x, const float *w, const float *b, int m, int k, int n, float *y,
               mc_act act) {
    mc_linear_ref(x, w, b, m, k, n, y, act);
}

void mc_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc) {
    mc_gemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void mc_conv2d(const mc_conv2d_desc *d, const float *w, const float *b, const float *x, int n,
               int h, int wd, float *y, mc_act act) {
    mc_conv2d_ref(d, w, b, x, n, h, wd, y, act);
}

void mc_layernorm(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                  float *y) {
    mc_layernorm_ref(x, rows, dim, g, b, eps, y);
}

void mc_layernorm_nchw(const float *x, int n, int c, int hw, const float *g, const float *b,
                       float eps, float *y) {
    mc_layernorm_nchw_ref(x, n, c, hw, g, b, eps, y);
}

void mc_softmax_rows(float *x, int rows, int cols) { mc_softmax_rows_ref(x, rows, cols); }

void mc_attention(const float *q, const float *k, const float *v, int ld, int t, int heads, int hd,
                  int causal, float *out, float *scratch) {
    mc_attention_ref(q, k, v, ld, t, heads, hd, causal, out, scratch);
}
