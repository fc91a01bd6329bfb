/*
 * io/resize.c - image resampling that reproduces Pillow 9.4's antialiased
 * Image.resize (separable convolution, 8-bit fixed-point coefficients),
 * torchvision's Resize(S) size rule and CenterCrop(S), the ToTensor +
 * Normalize conversion to float32 CHW, and the whole preprocessing pipeline
 * from a file.
 *
 * Exactness rules followed here (they decide every output byte):
 *   - coefficients are computed in double for the full output size, divided
 *     by their sum, then rounded half away from zero to 22 fractional bits;
 *   - the horizontal pass runs first (only when the width changes) into an
 *     8-bit buffer, then the vertical pass (only when the height changes);
 *   - each sum starts at 1 << 21 and is clipped to 0..255 after >> 22.
 * Only the output pixels (and coefficients) that survive the centre crop are
 * computed; each output pixel depends on its own coefficients only, so this
 * is exact.
 */
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RS_PRECISION_BITS (32 - 8 - 2)
#define RS_MAX_PIXELS ((int64_t)1 << 30)

typedef struct rs_coeffs {
    int ksize;        /* coefficients stored per output position */
    int first;        /* output position of entry 0 */
    int *bounds;      /* [n][2]: first input index, number of taps */
    int32_t *k;       /* [n][ksize] fixed-point weights */
} rs_coeffs;

static double rs_bilinear(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double rs_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static void rs_coeffs_free(rs_coeffs *c) {
    free(c->bounds);
    free(c->k);
    c->bounds = NULL;
    c->k = NULL;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size),
 * for the output positions o0 <= xx < o1 of out_size. */
static mc_status rs_coeffs_make(int in_size, int out_size, int o0, int o1, mc_interp interp,
                                rs_coeffs *c, mc_error *err) {
    double (*filter)(double) = interp == MC_INTERP_BICUBIC ? rs_bicubic : rs_bilinear;
    double support0 = interp == MC_INTERP_BICUBIC ? 2.0 : 1.0;
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = support0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    memset(c, 0, sizeof *c);
    c->ksize = ksize;
    c->first = o0;
    c->bounds = mc_malloc_array((size_t)(o1 - o0) * 2, sizeof(int));
    c->k = mc_malloc_array((size_t)(o1 - o0) * (size_t)ksize, sizeof(int32_t));
    double *w = mc_malloc_array((size_t)ksize, sizeof(double));
    if (!c->bounds || !c->k || !w) {
        free(w);
        rs_coeffs_free(c);
        return mc_fail(err, MC_ERR_NOMEM, "resize: out of memory for %d x %d coefficients",
                       o1 - o0, ksize);
    }
    for (int xx = o0; xx < o1; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize;   /* cannot happen; keeps indexing safe */
        if (xmax < 0) xmax = 0;
        for (int x = 0; x < xmax; x++) {
            w[x] = filter((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + (size_t)(xx - o0) * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = 0.0;
            if (x < xmax) v = ww != 0.0 ? w[x] / ww : w[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << RS_PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << RS_PRECISION_BITS));
        }
        c->bounds[(xx - o0) * 2] = xmin;
        c->bounds[(xx - o0) * 2 + 1] = xmax;
    }
    free(w);
    return MC_OK;
}

static inline uint8_t rs_clip8(int32_t v) {
    v >>= RS_PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Python's round(v / 2.0) for an integer v >= 0 (ties to even). */
static int rs_half_round_even(int v) {
    int q = v / 2;
    if (v % 2 && (q & 1)) q++;
    return q;
}

/*
 * Resamples in (w x h RGB) to rw x rh and returns in out (ow x oh) the window
 * whose top-left corner is (ox, oy) in resized coordinates; pixels of the
 * window outside the resized image are zero.
 */
static mc_status rs_resample_window(const mc_image *in, int rw, int rh, mc_interp interp, int ox,
                                    int oy, int ow, int oh, mc_image *out, mc_error *err) {
    const int w = in->width, h = in->height;
    int need_h = rw != w, need_v = rh != h;
    mc_status st;
    rs_coeffs hc = {0}, vc = {0};
    uint8_t *tmp = NULL;

    out->width = ow;
    out->height = oh;
    out->rgb = mc_calloc_array((size_t)ow * (size_t)oh, 3);
    if (!out->rgb) return mc_fail(err, MC_ERR_NOMEM, "resize: out of memory");

    /* The window clipped to the resized image. */
    int cx0 = ox < 0 ? 0 : ox, cy0 = oy < 0 ? 0 : oy;
    int cx1 = ox + ow > rw ? rw : ox + ow, cy1 = oy + oh > rh ? rh : oy + oh;
    if (cx1 <= cx0 || cy1 <= cy0) return MC_OK;
    const int cw = cx1 - cx0;

    if (need_h && (st = rs_coeffs_make(w, rw, cx0, cx1, interp, &hc, err)) != MC_OK) goto fail;
    if (need_v && (st = rs_coeffs_make(h, rh, cy0, cy1, interp, &vc, err)) != MC_OK) goto fail;

    /* Source rows the vertical pass reads. */
    int r0, r1;
    if (need_v) {
        r0 = vc.bounds[0];
        r1 = r0;
        for (int yy = cy0; yy < cy1; yy++) {
            int a = vc.bounds[(yy - cy0) * 2], b = a + vc.bounds[(yy - cy0) * 2 + 1];
            if (a < r0) r0 = a;
            if (b > r1) r1 = b;
        }
    } else {
        r0 = cy0;
        r1 = cy1;
    }
    const int tr = r1 - r0;

    /* Horizontal pass (or column copy) into tmp: tr rows x cw columns. */
    tmp = mc_malloc_array((size_t)(tr > 0 ? tr : 1) * (size_t)cw, 3);
    if (!tmp) { st = mc_fail(err, MC_ERR_NOMEM, "resize: out of memory"); goto fail; }
    for (int y = 0; y < tr; y++) {
        const uint8_t *src = in->rgb + (size_t)(y + r0) * w * 3;
        uint8_t *dst = tmp + (size_t)y * cw * 3;
        if (!need_h) {
            memcpy(dst, src + (size_t)cx0 * 3, (size_t)cw * 3);
            continue;
        }
        for (int xx = cx0; xx < cx1; xx++) {
            int xmin = hc.bounds[(xx - cx0) * 2], n = hc.bounds[(xx - cx0) * 2 + 1];
            const int32_t *k = hc.k + (size_t)(xx - cx0) * hc.ksize;
            const uint8_t *p = src + (size_t)xmin * 3;
            int32_t s0 = 1 << (RS_PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                s0 += p[x * 3 + 0] * k[x];
                s1 += p[x * 3 + 1] * k[x];
                s2 += p[x * 3 + 2] * k[x];
            }
            uint8_t *d = dst + (size_t)(xx - cx0) * 3;
            d[0] = rs_clip8(s0);
            d[1] = rs_clip8(s1);
            d[2] = rs_clip8(s2);
        }
    }

    /* Vertical pass (or row copy) into the window. */
    for (int yy = cy0; yy < cy1; yy++) {
        uint8_t *dst = out->rgb + ((size_t)(yy - oy) * ow + (size_t)(cx0 - ox)) * 3;
        if (!need_v) {
            memcpy(dst, tmp + (size_t)(yy - r0) * cw * 3, (size_t)cw * 3);
            continue;
        }
        int ymin = vc.bounds[(yy - cy0) * 2] - r0, n = vc.bounds[(yy - cy0) * 2 + 1];
        const int32_t *k = vc.k + (size_t)(yy - cy0) * vc.ksize;
        for (int c = 0; c < cw * 3; c++) {
            int32_t s = 1 << (RS_PRECISION_BITS - 1);
            const uint8_t *p = tmp + (size_t)ymin * cw * 3 + c;
            for (int y = 0; y < n; y++) s += p[(size_t)y * cw * 3] * k[y];
            dst[c] = rs_clip8(s);
        }
    }
    free(tmp);
    rs_coeffs_free(&hc);
    rs_coeffs_free(&vc);
    return MC_OK;

fail:
    free(tmp);
    rs_coeffs_free(&hc);
    rs_coeffs_free(&vc);
    free(out->rgb);
    out->rgb = NULL;
    out->width = out->height = 0;
    return st;
}

static mc_status rs_check_input(const mc_image *in, mc_error *err) {
    if (!in || !in->rgb || in->width <= 0 || in->height <= 0)
        return mc_fail(err, MC_ERR_INVALID_ARG, "resize: empty input image");
    return MC_OK;
}

mc_status mc_image_resample(const mc_image *in, int width, int height, mc_interp interp,
                            mc_image *out, mc_error *err) {
    mc_status st;
    memset(out, 0, sizeof *out);
    if ((st = rs_check_input(in, err)) != MC_OK) return st;
    if (width <= 0 || height <= 0 || (int64_t)width * height > RS_MAX_PIXELS)
        return mc_fail(err, MC_ERR_INVALID_ARG, "resize: bad output size %d x %d", width, height);
    if (interp != MC_INTERP_BILINEAR && interp != MC_INTERP_BICUBIC)
        return mc_fail(err, MC_ERR_INVALID_ARG, "resize: unknown interpolation %d", (int)interp);
    return rs_resample_window(in, width, height, interp, 0, 0, width, height, out, err);
}

mc_status mc_image_resize_crop(const mc_image *in, int size, mc_interp interp,
                               mc_resize_mode mode, mc_image *out, mc_error *err) {
    mc_status st;
    memset(out, 0, sizeof *out);
    if ((st = rs_check_input(in, err)) != MC_OK) return st;
    if (size <= 0 || size > 16384)
        return mc_fail(err, MC_ERR_INVALID_ARG, "resize: bad size %d", size);
    if (interp != MC_INTERP_BILINEAR && interp != MC_INTERP_BICUBIC)
        return mc_fail(err, MC_ERR_INVALID_ARG, "resize: unknown interpolation %d", (int)interp);
    if (mode == MC_RESIZE_SQUASH)
        return rs_resample_window(in, size, size, interp, 0, 0, size, size, out, err);
    if (mode != MC_RESIZE_SHORTEST)
        return mc_fail(err, MC_ERR_INVALID_ARG, "resize: unknown resize mode %d", (int)mode);

    /* torchvision: short side to size, long side int(size * long / short). */
    int w = in->width, h = in->height;
    int shortside = w <= h ? w : h, longside = w <= h ? h : w;
    double nl = (double)size * (double)longside / (double)shortside;
    if (nl > 1e9)
        return mc_fail(err, MC_ERR_INVALID_ARG, "resize: aspect ratio %d:%d too extreme",
                       longside, shortside);
    int new_long = (int)nl;
    int rw = w <= h ? size : new_long, rh = w <= h ? new_long : size;

    /* CenterCrop: zero-pad (left/top get the floor half) when smaller, then
     * crop at round((dim - size) / 2) with ties to even. */
    int pad_l = size > rw ? (size - rw) / 2 : 0, pad_t = size > rh ? (size - rh) / 2 : 0;
    int pad_r = size > rw ? (size - rw + 1) / 2 : 0, pad_b = size > rh ? (size - rh + 1) / 2 : 0;
    int pw = rw + pad_l + pad_r, ph = rh + pad_t + pad_b;
    int left = rs_half_round_even(pw - size), top = rs_half_round_even(ph - size);
    return rs_resample_window(in, rw, rh, interp, left - pad_l, top - pad_t, size, size, out, err);
}

void mc_image_to_tensor(const mc_image *img, const float mean[3], const float std[3],
                        float *out) {
    const size_t n = (size_t)img->width * (size_t)img->height;
    for (int c = 0; c < 3; c++) {
        const float m = mean[c], s = std[c];
        float *o = out + (size_t)c * n;
        const uint8_t *p = img->rgb + c;
        for (size_t i = 0; i < n; i++) {
            float x = (float)p[i * 3] / 255.0f;   /* ToTensor: float32 x / 255 */
            o[i] = (x - m) / s;                  /* Normalize: (x - mean) / std */
        }
    }
}

mc_status mc_image_preprocess_file(const char *path, const mc_preprocess_params *params,
                                   float *out, mc_error *err) {
    mc_preprocess_params p = params ? *params : mc_preprocess_default_params();
    for (int c = 0; c < 3; c++)
        if (!(p.std[c] != 0.0f) || p.std[c] != p.std[c])
            return mc_fail(err, MC_ERR_INVALID_ARG, "preprocess: std[%d] must be nonzero", c);
    mc_image img, res;
    mc_status st = mc_image_load(path, p.apply_exif, &img, err);
    if (st != MC_OK) return st;
    st = mc_image_resize_crop(&img, p.size, p.interp, p.resize_mode, &res, err);
    mc_image_free(&img);
    if (st != MC_OK) {
        mc_error_prefix(err, "%s", path);
        return st;
    }
    mc_image_to_tensor(&res, p.mean, p.std, out);
    mc_image_free(&res);
    return MC_OK;
}
