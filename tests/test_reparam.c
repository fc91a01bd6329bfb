/*
 * test_reparam.c - the folding algebra of src/model/reparam.c: each folded
 * convolution (or linear) must equal the unfolded train-time computation
 * (separate conv + BatchNorm branches, identity, layer scale) run with the
 * scalar reference kernels, on small random tensors with odd sizes.
 */
#include "kernels/kernels.h"
#include "model/reparam.h"
#include "test.h"

#define TOL 1e-5f

static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static float frand(float lo, float hi) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng >> 40) & 0xffffff) / 16777216.0f;
}
static float *rand_array(size_t n, float lo, float hi) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand(lo, hi);
    return p;
}

typedef struct bn_store {
    float *w, *b, *m, *v;
    mc_bn_params p;
} bn_store;

static void bn_make(bn_store *s, int c) {
    s->w = rand_array((size_t)c, -1.5f, 1.5f);
    s->b = rand_array((size_t)c, -0.5f, 0.5f);
    s->m = rand_array((size_t)c, -0.5f, 0.5f);
    s->v = rand_array((size_t)c, 0.2f, 2.0f);
    mc_bn_params p = {s->w, s->b, s->m, s->v, MC_BN_EPS};
    s->p = p;
}
static void bn_free(bn_store *s) { free(s->w), free(s->b), free(s->m), free(s->v); }

/* dst[n, c, hw] += BN(x[n, c, hw]), straight from the definition (in double). */
static void bn_apply_add(const bn_store *s, const float *x, int n, int c, size_t hw, float *dst) {
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (size_t j = 0; j < hw; j++) {
                size_t o = ((size_t)i * c + ch) * hw + j;
                double y = (x[o] - s->m[ch]) / sqrt((double)s->v[ch] + MC_BN_EPS) * s->w[ch] + s->b[ch];
                dst[o] += (float)y;
            }
}

/* dst += BN(conv(x)) for a conv-BN branch with kernel k, padding k/2. */
static void branch_add(const float *x, int n, int cin, int h, int w, int cout, int groups, int k, int stride,
                       const float *wt, const bn_store *bn, float *dst) {
    mc_conv2d_desc d = {cin, cout, k, k, stride, stride, k / 2, k / 2, groups};
    int oh = mc_conv_out(h, k, stride, k / 2), ow = mc_conv_out(w, k, stride, k / 2);
    size_t len = (size_t)n * cout * oh * ow;
    float *y = malloc(len * sizeof *y);
    mc_conv2d_ref(&d, wt, NULL, x, n, h, w, y, MC_ACT_NONE);
    bn_apply_add(bn, y, n, cout, (size_t)oh * ow, dst);
    free(y);
}

/* MobileOne block: nb conv branches of side k, optional 1x1 scale branch, optional identity BN. */
static void test_mobileone(const char *label, int cin, int cout, int groups, int k, int stride, int nb,
                           int scale, int identity) {
    int n = 2, h = 9, w = 7, cin_g = cin / groups;
    int oh = mc_conv_out(h, k, stride, k / 2), ow = mc_conv_out(w, k, stride, k / 2);
    float *x = rand_array((size_t)n * cin * h * w, -1, 1);
    size_t olen = (size_t)n * cout * oh * ow, wlen = (size_t)cout * cin_g * k * k;
    float *ref = calloc(olen, sizeof *ref), *got = malloc(olen * sizeof *got);
    float *fw = calloc(wlen, sizeof *fw), *fb = calloc((size_t)cout, sizeof *fb);
    for (int i = 0; i < nb; i++) {
        float *wt = rand_array(wlen, -0.5f, 0.5f);
        bn_store bn;
        bn_make(&bn, cout);
        branch_add(x, n, cin, h, w, cout, groups, k, stride, wt, &bn, ref);
        mc_reparam_add_conv_bn(fw, fb, cout, cin_g, k, wt, k, &bn.p);
        free(wt), bn_free(&bn);
    }
    if (scale) {
        float *wt = rand_array((size_t)cout * cin_g, -0.5f, 0.5f);
        bn_store bn;
        bn_make(&bn, cout);
        /* a 1x1 conv with padding 0 and the same stride samples the kxk conv's centre tap */
        branch_add(x, n, cin, h, w, cout, groups, 1, stride, wt, &bn, ref);
        mc_reparam_add_conv_bn(fw, fb, cout, cin_g, k, wt, 1, &bn.p);
        free(wt), bn_free(&bn);
    }
    if (identity) {
        bn_store bn;
        bn_make(&bn, cin);
        bn_apply_add(&bn, x, n, cin, (size_t)h * w, ref);
        mc_reparam_add_identity_bn(fw, fb, cin, cin_g, k, &bn.p);
        bn_free(&bn);
    }
    mc_conv2d_desc d = {cin, cout, k, k, stride, stride, k / 2, k / 2, groups};
    mc_conv2d_ref(&d, fw, fb, x, n, h, w, got, MC_ACT_NONE);
    float diff = max_abs_diff(got, ref, olen);
    printf("  %-38s max-abs diff %.3g\n", label, diff);
    CHECK(diff <= TOL, "%s: folded conv differs by %g", label, diff);
    free(x), free(ref), free(got), free(fw), free(fb);
}

/* ReparamLargeKernelConv: large conv-BN plus small conv-BN (padded), stride 2, depthwise. */
static void test_large_kernel(void) {
    int n = 2, c = 5, h = 13, w = 11, K = 7, k = 3, s = 2;
    int oh = mc_conv_out(h, K, s, K / 2), ow = mc_conv_out(w, K, s, K / 2);
    float *x = rand_array((size_t)n * c * h * w, -1, 1);
    size_t olen = (size_t)n * c * oh * ow;
    float *ref = calloc(olen, sizeof *ref), *got = malloc(olen * sizeof *got);
    float *wl = rand_array((size_t)c * K * K, -0.3f, 0.3f), *ws = rand_array((size_t)c * k * k, -0.3f, 0.3f);
    float *fw = calloc((size_t)c * K * K, sizeof *fw), *fb = calloc((size_t)c, sizeof *fb);
    bn_store b1, b2;
    bn_make(&b1, c), bn_make(&b2, c);
    branch_add(x, n, c, h, w, c, c, K, s, wl, &b1, ref);
    branch_add(x, n, c, h, w, c, c, k, s, ws, &b2, ref);
    mc_reparam_add_conv_bn(fw, fb, c, 1, K, wl, K, &b1.p);
    mc_reparam_add_conv_bn(fw, fb, c, 1, K, ws, k, &b2.p);
    mc_conv2d_desc d = {c, c, K, K, s, s, K / 2, K / 2, c};
    mc_conv2d_ref(&d, fw, fb, x, n, h, w, got, MC_ACT_NONE);
    float diff = max_abs_diff(got, ref, olen);
    printf("  %-38s max-abs diff %.3g\n", "large kernel 7x7 + 3x3, stride 2", diff);
    CHECK(diff <= TOL, "large kernel: folded conv differs by %g", diff);
    bn_free(&b1), bn_free(&b2);
    free(x), free(ref), free(got), free(wl), free(ws), free(fw), free(fb);
}

/* RepMixer: x + ls * (mixer(x) - norm(x)); mixer = depthwise conv-BN + 1x1 scale + identity BN,
 * norm = identity BN only. */
static void test_repmixer(int with_ls) {
    int n = 2, c = 6, h = 8, w = 5, k = 3;
    size_t len = (size_t)n * c * h * w, hw = (size_t)h * w;
    float *x = rand_array(len, -1, 1);
    float *mix = calloc(len, sizeof *mix), *norm = calloc(len, sizeof *norm), *got = malloc(len * sizeof *got);
    float *wk = rand_array((size_t)c * k * k, -0.5f, 0.5f), *wsc = rand_array((size_t)c, -0.5f, 0.5f);
    float *ls = with_ls ? rand_array((size_t)c, -1, 1) : NULL;
    bn_store bk, bs, bi, bn;
    bn_make(&bk, c), bn_make(&bs, c), bn_make(&bi, c), bn_make(&bn, c);
    branch_add(x, n, c, h, w, c, c, k, 1, wk, &bk, mix);
    branch_add(x, n, c, h, w, c, c, 1, 1, wsc, &bs, mix);
    bn_apply_add(&bi, x, n, c, hw, mix);
    bn_apply_add(&bn, x, n, c, hw, norm);
    float *ref = malloc(len * sizeof *ref);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (size_t j = 0; j < hw; j++) {
                size_t o = ((size_t)i * c + ch) * hw + j;
                ref[o] = x[o] + (ls ? ls[ch] : 1.0f) * (mix[o] - norm[o]);
            }
    size_t wl = (size_t)c * k * k;
    float *mw = calloc(wl, 4), *mb = calloc((size_t)c, 4), *nw = calloc(wl, 4), *nb = calloc((size_t)c, 4);
    mc_reparam_add_conv_bn(mw, mb, c, 1, k, wk, k, &bk.p);
    mc_reparam_add_conv_bn(mw, mb, c, 1, k, wsc, 1, &bs.p);
    mc_reparam_add_identity_bn(mw, mb, c, 1, k, &bi.p);
    mc_reparam_add_identity_bn(nw, nb, c, 1, k, &bn.p);
    float *fw = malloc(wl * 4), *fb = malloc((size_t)c * 4);
    mc_reparam_repmixer(fw, fb, c, k, mw, mb, nw, nb, ls);
    mc_conv2d_desc d = {c, c, k, k, 1, 1, k / 2, k / 2, c};
    mc_conv2d_ref(&d, fw, fb, x, n, h, w, got, MC_ACT_NONE);
    float diff = max_abs_diff(got, ref, len);
    printf("  %-38s max-abs diff %.3g\n", with_ls ? "RepMixer with layer scale" : "RepMixer without layer scale", diff);
    CHECK(diff <= TOL, "RepMixer: folded conv differs by %g", diff);
    bn_free(&bk), bn_free(&bs), bn_free(&bi), bn_free(&bn);
    free(x), free(mix), free(norm), free(got), free(wk), free(wsc), free(ls), free(ref);
    free(mw), free(mb), free(nw), free(nb), free(fw), free(fb);
}

/* RepCPE: pe(x) + x with a depthwise 7x7 conv with bias. */
static void test_cpe(void) {
    int n = 1, c = 4, h = 6, w = 9, k = 7;
    size_t len = (size_t)n * c * h * w;
    float *x = rand_array(len, -1, 1), *wt = rand_array((size_t)c * k * k, -0.3f, 0.3f);
    float *b = rand_array((size_t)c, -0.2f, 0.2f), *ref = malloc(len * 4), *got = malloc(len * 4);
    mc_conv2d_desc d = {c, c, k, k, 1, 1, k / 2, k / 2, c};
    mc_conv2d_ref(&d, wt, b, x, n, h, w, ref, MC_ACT_NONE);
    for (size_t i = 0; i < len; i++) ref[i] += x[i];
    mc_reparam_add_identity(wt, c, 1, k, 1.0f);
    mc_conv2d_ref(&d, wt, b, x, n, h, w, got, MC_ACT_NONE);
    float diff = max_abs_diff(got, ref, len);
    printf("  %-38s max-abs diff %.3g\n", "RepCPE", diff);
    CHECK(diff <= TOL, "RepCPE: folded conv differs by %g", diff);
    free(x), free(wt), free(b), free(ref), free(got);
}

/* BatchNorm in front of a linear (attention norm -> qkv) and LayerScale after a linear. */
static void test_linear_folds(void) {
    int t = 7, in = 10, out = 9;
    float *x = rand_array((size_t)t * in, -1, 1), *w = rand_array((size_t)out * in, -0.5f, 0.5f);
    float *b = rand_array((size_t)out, -0.2f, 0.2f), *ls = rand_array((size_t)out, -1, 1);
    bn_store bn;
    bn_make(&bn, in);
    /* tokens x[t, in]: BN over the channel (column) index */
    float *xn = malloc((size_t)t * in * 4);
    for (int i = 0; i < t; i++)
        for (int j = 0; j < in; j++)
            xn[i * in + j] = (float)((x[i * in + j] - bn.m[j]) / sqrt((double)bn.v[j] + MC_BN_EPS) * bn.w[j] + bn.b[j]);
    float *ref = malloc((size_t)t * out * 4), *got = malloc((size_t)t * out * 4);
    mc_linear_ref(xn, w, b, t, in, out, ref, MC_ACT_NONE);
    for (int i = 0; i < t; i++)
        for (int j = 0; j < out; j++) ref[i * out + j] *= ls[j];
    float *sc = malloc((size_t)in * 4), *sh = malloc((size_t)in * 4);
    mc_reparam_bn_affine(&bn.p, in, sc, sh);
    mc_reparam_affine_into_linear(w, b, out, in, sc, sh);
    mc_reparam_scale_out(w, b, out, (size_t)in, ls);
    mc_linear_ref(x, w, b, t, in, out, got, MC_ACT_NONE);
    float diff = max_abs_diff(got, ref, (size_t)t * out);
    printf("  %-38s max-abs diff %.3g\n", "BN into linear, layer scale after", diff);
    CHECK(diff <= TOL, "linear folds differ by %g", diff);
    bn_free(&bn);
    free(x), free(w), free(b), free(ls), free(xn), free(ref), free(got), free(sc), free(sh);
}

int main(void) {
    test_mobileone("MobileOne 3x3 dense, all branches", 6, 6, 1, 3, 1, 1, 1, 1);
    test_mobileone("MobileOne 3x3 depthwise, 3 branches", 6, 6, 6, 3, 1, 3, 1, 1);
    test_mobileone("MobileOne 3x3 s2 (stem), no identity", 3, 8, 1, 3, 2, 1, 1, 0);
    test_mobileone("MobileOne 3x3 grouped expanding", 4, 8, 4, 3, 1, 1, 1, 0);
    test_mobileone("MobileOne 1x1 with identity", 5, 5, 1, 1, 1, 1, 0, 1);
    test_mobileone("MobileOne 5x5 grouped (2), identity", 6, 6, 2, 5, 1, 2, 1, 1);
    test_large_kernel();
    test_repmixer(1);
    test_repmixer(0);
    test_cpe();
    test_linear_folds();
    return test_summary("test_reparam");
}
