/*
 * data/augment.c - byte-exact re-application of reinforced-dataset augmentations
 * (see augment.h for the format and the API).
 *
 * The reference runs torchvision 0.14 functional ops on PIL images, so every
 * output byte is decided by Pillow 9.4's C code and by the double-precision
 * Python arithmetic that builds its arguments.  The rules kept here:
 *   - affine matrices are built in double in the order torchvision's
 *     _get_inverse_affine_matrix / Pillow's Image.rotate evaluate them
 *     (rotate rounds its sines and cosines to 15 decimals);
 *   - the nearest-neighbour affine picks one of Pillow's three paths: a
 *     tabulated scale/translate path when the matrix has no cross terms,
 *     16.16 fixed point when all four corners map inside +-32768, else an
 *     incrementally accumulated double path; positions are sampled at pixel
 *     centres and truncated (negative -> outside);
 *   - ImageEnhance blends use a float alpha with an in-range path
 *     (truncation) and an extrapolating path (clip, then truncation);
 *   - the Sharpness blur is Pillow's 3x3 float kernel (1/13, 5/13 as float),
 *     rows summed bottom row first, borders copied;
 *   - grey levels use Pillow's RGB->L 16.16 fixed-point weights;
 *   - LUT ops clamp table entries to 0..255 as Image.point does.
 * No fused multiply-add may change a float result, hence fp-contract off.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "data/augment.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const aug_op_names[MC_AUG_OP_COUNT] = {
    "Identity", "ShearX",     "ShearY",    "TranslateX", "TranslateY",
    "Rotate",   "Brightness", "Color",     "Contrast",   "Sharpness",
    "Posterize", "Solarize",  "AutoContrast", "Equalize",
};

const char *mc_aug_op_name(int op) {
    return (op >= 0 && op < MC_AUG_OP_COUNT) ? aug_op_names[op] : "?";
}

/* Largest |magnitude| accepted for any op: far beyond what RandAugment can
 * draw (30 degrees, 0.9, 255, ...), small enough that no coordinate or
 * blended value can overflow. */
#define AUG_MAX_MAGNITUDE 1e6

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static mc_status aug_check_image(const mc_image *img, const char *what, mc_error *err) {
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: empty image", what);
    return MC_OK;
}

static uint8_t *aug_alloc_pixels(int w, int h) {
    return mc_malloc_array((size_t)w * (size_t)h, 3);
}

/* Replaces img's pixels with buf (same size), freeing the old ones. */
static void aug_swap_in(mc_image *img, uint8_t *buf) {
    free(img->rgb);
    img->rgb = buf;
}

/* Python's float % for a positive or negative divisor. */
static double py_mod(double x, double y) {
    double m = fmod(x, y);
    if (m != 0.0) {
        if ((y < 0) != (m < 0)) m += y;
    } else {
        m = copysign(0.0, y);
    }
    return m;
}

/* Python's round(x, 15): the double nearest to x correctly rounded to 15
 * decimals (glibc's printf rounds the exact binary value, strtod reads the
 * decimal back correctly rounded, as CPython's dtoa does). */
static double py_round15(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

static const double aug_deg2rad = 3.14159265358979323846 / 180.0; /* math.radians */
static const double aug_rad2deg = 180.0 / 3.14159265358979323846; /* math.degrees */

/* ------------------------------------------------------------------------ */
/* Geometry: Pillow's nearest-neighbour affine transform                     */
/* ------------------------------------------------------------------------ */

/* Pillow's COORD: truncation, with every negative position outside. */
static inline long long aug_coord(double v) {
    return v < 0.0 ? -1 : (long long)v;
}

/* Pillow's FLOOR for the fixed-point conversion. */
static inline long long aug_floor(double v) {
    return v < 0.0 ? (long long)floor(v) : (long long)v;
}

static inline int aug_fixed_ok(const double a[6], int x, int y) {
    return fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 &&
           fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
}

static inline void aug_put(uint8_t *dst, const uint8_t *src) {
    dst[0] = src[0];
    dst[1] = src[1];
    dst[2] = src[2];
}

/* src and dst are w x h RGB; dst starts black. */
static mc_status aug_affine(const uint8_t *src, uint8_t *dst, int w, int h, const double a[6],
                            mc_error *err) {
    memset(dst, 0, (size_t)w * (size_t)h * 3);

    if (a[1] == 0 && a[3] == 0) {
        /* Scale / translation: the input column of each output column is
         * tabulated once, then whole rows are copied. */
        int *xin_of = calloc((size_t)w, sizeof *xin_of);
        if (!xin_of) return mc_fail(err, MC_ERR_NOMEM, "affine: out of memory");
        double xo = a[2] + a[0] * 0.5, yo = a[5] + a[4] * 0.5;
        int xmin = w, xmax = 0;
        for (int x = 0; x < w; x++) {
            long long xin = aug_coord(xo);
            if (xin >= 0 && xin < w) {
                xmax = x + 1;
                if (x < xmin) xmin = x;
                xin_of[x] = (int)xin;
            }
            xo += a[0];
        }
        for (int y = 0; y < h; y++) {
            long long yi = aug_coord(yo);
            if (yi >= 0 && yi < h) {
                const uint8_t *in = src + (size_t)yi * w * 3;
                uint8_t *out = dst + (size_t)y * w * 3;
                for (int x = xmin; x < xmax; x++) aug_put(out + (size_t)x * 3, in + (size_t)xin_of[x] * 3);
            }
            yo += a[4];
        }
        free(xin_of);
        return MC_OK;
    }

    if (aug_fixed_ok(a, 0, 0) && aug_fixed_ok(a, w, h) && aug_fixed_ok(a, 0, h) &&
        aug_fixed_ok(a, w, 0)) {
        /* 16.16 fixed point, position of pixel centre (0.5, 0.5) first. */
        long long a0 = aug_floor(a[0] * 65536.0 + 0.5);
        long long a1 = aug_floor(a[1] * 65536.0 + 0.5);
        long long a3 = aug_floor(a[3] * 65536.0 + 0.5);
        long long a4 = aug_floor(a[4] * 65536.0 + 0.5);
        long long a2 = aug_floor((a[2] + a[0] * 0.5 + a[1] * 0.5) * 65536.0 + 0.5);
        long long a5 = aug_floor((a[5] + a[3] * 0.5 + a[4] * 0.5) * 65536.0 + 0.5);
        for (int y = 0; y < h; y++) {
            long long xx = a2, yy = a5;
            uint8_t *out = dst + (size_t)y * w * 3;
            for (int x = 0; x < w; x++) {
                long long xin = xx >> 16; /* arithmetic shift: floor */
                if (xin >= 0 && xin < w) {
                    long long yin = yy >> 16;
                    if (yin >= 0 && yin < h)
                        aug_put(out + (size_t)x * 3, src + ((size_t)yin * w + (size_t)xin) * 3);
                }
                xx += a0;
                yy += a3;
            }
            a2 += a1;
            a5 += a4;
        }
        return MC_OK;
    }

    /* Double accumulation (very large images or far-away sources). */
    double xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
    double yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
    for (int y = 0; y < h; y++) {
        double xx = xo, yy = yo;
        uint8_t *out = dst + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            /* positions beyond the image are outside whatever their integer
             * part; testing first keeps the conversion defined */
            if (xx >= 0.0 && xx < (double)w && yy >= 0.0 && yy < (double)h) {
                long long xin = aug_coord(xx), yin = aug_coord(yy);
                aug_put(out + (size_t)x * 3, src + ((size_t)yin * w + (size_t)xin) * 3);
            }
            xx += a[0];
            yy += a[3];
        }
        xo += a[1];
        yo += a[4];
    }
    return MC_OK;
}

mc_status mc_aug_affine_nearest(mc_image *img, const double a[6], mc_error *err) {
    mc_status st = aug_check_image(img, "affine", err);
    if (st != MC_OK) return st;
    for (int i = 0; i < 6; i++)
        if (!isfinite(a[i])) return mc_fail(err, MC_ERR_INVALID_ARG, "affine: non-finite matrix");
    uint8_t *dst = aug_alloc_pixels(img->width, img->height);
    if (!dst) return mc_fail(err, MC_ERR_NOMEM, "affine: out of memory");
    st = aug_affine(img->rgb, dst, img->width, img->height, a, err);
    if (st != MC_OK) {
        free(dst);
        return st;
    }
    aug_swap_in(img, dst);
    return MC_OK;
}

/* torchvision's _get_inverse_affine_matrix (scale 1), same evaluation order. */
static void aug_inverse_affine(double cx, double cy, double angle, double tx, double ty,
                               double shear_x, double shear_y, double m[6]) {
    double rot = angle * aug_deg2rad;
    double sx = shear_x * aug_deg2rad;
    double sy = shear_y * aug_deg2rad;
    double a = cos(rot - sy) / cos(sy);
    double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    double c = sin(rot - sy) / cos(sy);
    double d = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    m[0] = d / 1.0;
    m[1] = -b / 1.0;
    m[2] = 0.0 / 1.0;
    m[3] = -c / 1.0;
    m[4] = a / 1.0;
    m[5] = 0.0 / 1.0;
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
}

/* Lossless quarter/half turns (Pillow's transpose). */
static mc_status aug_transpose_rot(mc_image *img, int quarter_turns, mc_error *err) {
    const int w = img->width, h = img->height;
    uint8_t *dst = aug_alloc_pixels(w, h);
    if (!dst) return mc_fail(err, MC_ERR_NOMEM, "rotate: out of memory");
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            const uint8_t *s = img->rgb + ((size_t)y * w + x) * 3;
            size_t o;
            if (quarter_turns == 2)
                o = (size_t)(h - 1 - y) * w + (size_t)(w - 1 - x);
            else if (quarter_turns == 1) /* counter-clockwise; square images only */
                o = (size_t)(w - 1 - x) * h + (size_t)y;
            else /* 3 */
                o = (size_t)x * h + (size_t)(h - 1 - y);
            aug_put(dst + o * 3, s);
        }
    }
    aug_swap_in(img, dst);
    return MC_OK;
}

/* PIL Image.rotate(angle, NEAREST, expand=False, center=None, fillcolor=0). */
static mc_status aug_rotate(mc_image *img, double angle, mc_error *err) {
    const int w = img->width, h = img->height;
    angle = py_mod(angle, 360.0);
    if (angle == 0) return MC_OK;
    if (angle == 180) return aug_transpose_rot(img, 2, err);
    if ((angle == 90 || angle == 270) && w == h)
        return aug_transpose_rot(img, angle == 90 ? 1 : 3, err);

    double cx = w / 2.0, cy = h / 2.0;
    double r = -(angle * aug_deg2rad);
    double m[6] = {py_round15(cos(r)), py_round15(sin(r)), 0.0,
                   py_round15(-sin(r)), py_round15(cos(r)), 0.0};
    double px = -cx - 0, py = -cy - 0;
    double m2 = m[0] * px + m[1] * py + m[2];
    double m5 = m[3] * px + m[4] * py + m[5];
    m[2] = m2 + cx;
    m[5] = m5 + cy;
    return mc_aug_affine_nearest(img, m, err);
}

/* ------------------------------------------------------------------------ */
/* Colour: ImageEnhance blends and ImageOps LUTs                             */
/* ------------------------------------------------------------------------ */

/* Pillow's RGB -> L. */
static inline uint8_t aug_luma(const uint8_t *p) {
    return (uint8_t)(((unsigned)p[0] * 19595u + (unsigned)p[1] * 38470u + (unsigned)p[2] * 7471u +
                      0x8000u) >> 16);
}

/* Image.blend(deg, img, factor) written into img. */
static void aug_blend(const uint8_t *deg, uint8_t *img, size_t n, double factor) {
    const float alpha = (float)factor;
    if (alpha == 0.0f) {
        memcpy(img, deg, n);
        return;
    }
    if (alpha == 1.0f) return;
    if (alpha >= 0 && alpha <= 1.0) {
        for (size_t i = 0; i < n; i++) {
            int d = deg[i], v = img[i];
            img[i] = (uint8_t)((float)d + alpha * (float)(v - d));
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            int d = deg[i], v = img[i];
            float t = (float)d + alpha * (float)(v - d);
            img[i] = t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
        }
    }
}

static inline uint8_t aug_clip8f(float v) {
    if (v <= 0.0f) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)v;
}

/* ImageFilter.SMOOTH as Pillow 9.4 runs it (ImagingFilter3x3). */
static void aug_smooth(const uint8_t *in, uint8_t *out, int w, int h) {
    const size_t row = (size_t)w * 3;
    if (w < 3 || h < 3) {
        memcpy(out, in, row * (size_t)h);
        return;
    }
    const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
    const float k[9] = {k1, k1, k1, k1, k5, k1, k1, k1, k1};
    memcpy(out, in, row);
    for (int y = 1; y < h - 1; y++) {
        const uint8_t *up = in + (size_t)(y - 1) * row, *mid = in + (size_t)y * row,
                      *dn = in + (size_t)(y + 1) * row;
        uint8_t *o = out + (size_t)y * row;
        memcpy(o, mid, 3);
        for (int x = 1; x < w - 1; x++) {
            for (int c = 0; c < 3; c++) {
                size_t i = (size_t)x * 3 + c;
                float ss = 0.5f;
                ss += (float)dn[i - 3] * k[0] + (float)dn[i] * k[1] + (float)dn[i + 3] * k[2];
                ss += (float)mid[i - 3] * k[3] + (float)mid[i] * k[4] + (float)mid[i + 3] * k[5];
                ss += (float)up[i - 3] * k[6] + (float)up[i] * k[7] + (float)up[i + 3] * k[8];
                o[i] = aug_clip8f(ss);
            }
        }
        memcpy(o + (size_t)(w - 1) * 3, mid + (size_t)(w - 1) * 3, 3);
    }
    memcpy(out + (size_t)(h - 1) * row, in + (size_t)(h - 1) * row, row);
}

/* Enhance ops: builds the degenerate image, then blends. */
static mc_status aug_enhance(mc_image *img, int op, double factor, mc_error *err) {
    const size_t npx = (size_t)img->width * (size_t)img->height, n = npx * 3;
    uint8_t *deg = aug_alloc_pixels(img->width, img->height);
    if (!deg) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", mc_aug_op_name(op));
    const uint8_t *p = img->rgb;
    switch (op) {
        case MC_AUG_BRIGHTNESS:
            memset(deg, 0, n);
            break;
        case MC_AUG_COLOR:
            for (size_t i = 0; i < npx; i++) deg[i * 3] = deg[i * 3 + 1] = deg[i * 3 + 2] = aug_luma(p + i * 3);
            break;
        case MC_AUG_CONTRAST: {
            /* ImageStat mean of the L image from its histogram, in double */
            size_t hist[256] = {0};
            for (size_t i = 0; i < npx; i++) hist[aug_luma(p + i * 3)]++;
            double sum = 0.0;
            for (int j = 0; j < 256; j++) sum += (double)j * (double)hist[j];
            int mean = (int)(sum / (double)npx + 0.5);
            memset(deg, mean, n);
            break;
        }
        case MC_AUG_SHARPNESS:
            aug_smooth(p, deg, img->width, img->height);
            break;
        default:
            free(deg);
            return mc_fail(err, MC_ERR_INTERNAL, "enhance: bad op %d", op);
    }
    aug_blend(deg, img->rgb, n, factor);
    free(deg);
    return MC_OK;
}

/* Image.point with one 256-entry table per band (entries clamped to 0..255). */
static void aug_point(mc_image *img, const long long lut[3][256]) {
    uint8_t t[3][256];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 256; i++)
            t[c][i] = lut[c][i] < 0 ? 0 : lut[c][i] > 255 ? 255 : (uint8_t)lut[c][i];
    const size_t npx = (size_t)img->width * (size_t)img->height;
    uint8_t *q = img->rgb;
    for (size_t i = 0; i < npx; i++, q += 3) {
        q[0] = t[0][q[0]];
        q[1] = t[1][q[1]];
        q[2] = t[2][q[2]];
    }
}

static void aug_histogram(const mc_image *img, long long hist[3][256]) {
    memset(hist, 0, sizeof(long long) * 3 * 256);
    const size_t npx = (size_t)img->width * (size_t)img->height;
    const uint8_t *q = img->rgb;
    for (size_t i = 0; i < npx; i++, q += 3) {
        hist[0][q[0]]++;
        hist[1][q[1]]++;
        hist[2][q[2]]++;
    }
}

/* ImageOps.autocontrast(image) with cutoff 0, no ignore. */
static void aug_autocontrast(mc_image *img) {
    long long hist[3][256], lut[3][256];
    aug_histogram(img, hist);
    for (int c = 0; c < 3; c++) {
        int lo, hi;
        for (lo = 0; lo < 255 && !hist[c][lo]; lo++) {}
        for (hi = 255; hi > 0 && !hist[c][hi]; hi--) {}
        if (hi <= lo) {
            for (int i = 0; i < 256; i++) lut[c][i] = i;
            continue;
        }
        double scale = 255.0 / (double)(hi - lo);
        double offset = (double)(-lo) * scale;
        for (int i = 0; i < 256; i++) {
            double v = (double)i * scale + offset;
            long long ix = (long long)v; /* Python int(): toward zero */
            lut[c][i] = ix < 0 ? 0 : ix > 255 ? 255 : ix;
        }
    }
    aug_point(img, lut);
}

/* ImageOps.equalize(image) without mask. */
static void aug_equalize(mc_image *img) {
    long long hist[3][256], lut[3][256];
    aug_histogram(img, hist);
    for (int c = 0; c < 3; c++) {
        long long total = 0, last = 0;
        int nonzero = 0;
        for (int i = 0; i < 256; i++) {
            if (hist[c][i]) {
                nonzero++;
                total += hist[c][i];
                last = hist[c][i];
            }
        }
        long long step = nonzero <= 1 ? 0 : (total - last) / 255;
        if (!step) {
            for (int i = 0; i < 256; i++) lut[c][i] = i;
            continue;
        }
        long long n = step / 2;
        for (int i = 0; i < 256; i++) {
            lut[c][i] = n / step;
            n += hist[c][i];
        }
    }
    aug_point(img, lut);
}

/* ------------------------------------------------------------------------ */
/* Ops                                                                       */
/* ------------------------------------------------------------------------ */

static mc_status aug_check_magnitude(int op, double mag, mc_error *err) {
    if (op < 0 || op >= MC_AUG_OP_COUNT)
        return mc_fail(err, MC_ERR_FORMAT, "unknown RandAugment op index %d (0..%d)", op,
                       MC_AUG_OP_COUNT - 1);
    if (!isfinite(mag) || fabs(mag) > AUG_MAX_MAGNITUDE)
        return mc_fail(err, MC_ERR_FORMAT, "%s: magnitude %g out of range", mc_aug_op_name(op), mag);
    if (op == MC_AUG_POSTERIZE && (long long)mag > 8)
        return mc_fail(err, MC_ERR_FORMAT, "Posterize: %lld bits (at most 8)", (long long)mag);
    return MC_OK;
}

mc_status mc_aug_apply_op(mc_image *img, int op, double mag, mc_error *err) {
    mc_status st = aug_check_image(img, "RandAugment", err);
    if (st != MC_OK) return st;
    if ((st = aug_check_magnitude(op, mag, err)) != MC_OK) return st;
    const int w = img->width, h = img->height;
    double m[6];
    switch (op) {
        case MC_AUG_IDENTITY:
            return MC_OK;
        case MC_AUG_SHEAR_X:
        case MC_AUG_SHEAR_Y: {
            /* F.affine(shear=degrees(atan(m)) on one axis, center=[0, 0]) */
            double deg = atan(mag) * aug_rad2deg;
            aug_inverse_affine(0.0, 0.0, 0.0, 0.0, 0.0, op == MC_AUG_SHEAR_X ? deg : 0.0,
                               op == MC_AUG_SHEAR_Y ? deg : 0.0, m);
            return mc_aug_affine_nearest(img, m, err);
        }
        case MC_AUG_TRANSLATE_X:
        case MC_AUG_TRANSLATE_Y: {
            /* F.affine(translate=[int(m), 0] or [0, int(m)]) about the centre */
            double t = (double)(long long)mag;
            aug_inverse_affine(w * 0.5, h * 0.5, 0.0, op == MC_AUG_TRANSLATE_X ? t : 0.0,
                               op == MC_AUG_TRANSLATE_Y ? t : 0.0, 0.0, 0.0, m);
            return mc_aug_affine_nearest(img, m, err);
        }
        case MC_AUG_ROTATE:
            return aug_rotate(img, mag, err);
        case MC_AUG_BRIGHTNESS:
        case MC_AUG_COLOR:
        case MC_AUG_CONTRAST:
        case MC_AUG_SHARPNESS:
            return aug_enhance(img, op, 1.0 + mag, err);
        case MC_AUG_POSTERIZE: {
            /* ImageOps.posterize(int(m)): keep the top bits; 0 or fewer bits
             * leave nothing, as Python's mask ~(2 ** (8 - bits) - 1) does */
            long long bits = (long long)mag, lut[3][256];
            int mask = bits <= 0 ? 0 : (int)(~((1u << (8 - bits)) - 1u) & 0xffu);
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 256; i++) lut[c][i] = i & mask;
            aug_point(img, lut);
            return MC_OK;
        }
        case MC_AUG_SOLARIZE: {
            long long lut[3][256];
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 256; i++) lut[c][i] = ((double)i < mag) ? i : 255 - i;
            aug_point(img, lut);
            return MC_OK;
        }
        case MC_AUG_AUTOCONTRAST:
            aug_autocontrast(img);
            return MC_OK;
        case MC_AUG_EQUALIZE:
            aug_equalize(img);
            return MC_OK;
        default:
            return mc_fail(err, MC_ERR_INTERNAL, "RandAugment: op %d", op);
    }
}

mc_status mc_aug_hflip(mc_image *img, mc_error *err) {
    mc_status st = aug_check_image(img, "flip", err);
    if (st != MC_OK) return st;
    const int w = img->width;
    for (int y = 0; y < img->height; y++) {
        uint8_t *r = img->rgb + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--) {
            uint8_t t[3];
            memcpy(t, r + (size_t)a * 3, 3);
            memcpy(r + (size_t)a * 3, r + (size_t)b * 3, 3);
            memcpy(r + (size_t)b * 3, t, 3);
        }
    }
    return MC_OK;
}

/* Python's slice bounds s:e on a sequence of length n. */
static void py_slice(long long s, long long e, long long n, long long *lo, long long *hi) {
    if (s < 0) s += n;
    if (s < 0) s = 0;
    if (s > n) s = n;
    if (e < 0) e += n;
    if (e < 0) e = 0;
    if (e > n) e = n;
    *lo = s;
    *hi = e > s ? e : s;
}

#define AUG_MAX_ERASE_COORD 1000000000000000LL

mc_status mc_aug_erase(mc_image *img, long long x, long long y, long long h, long long w,
                       mc_error *err) {
    mc_status st = aug_check_image(img, "erase", err);
    if (st != MC_OK) return st;
    if (llabs(x) > AUG_MAX_ERASE_COORD || llabs(y) > AUG_MAX_ERASE_COORD ||
        llabs(h) > AUG_MAX_ERASE_COORD || llabs(w) > AUG_MAX_ERASE_COORD)
        return mc_fail(err, MC_ERR_INVALID_ARG, "erase: box out of range");
    if (x == -1) return MC_OK;
    long long r0, r1, c0, c1;
    py_slice(x, x + h, img->height, &r0, &r1);
    py_slice(y, y + w, img->width, &c0, &c1);
    for (long long r = r0; r < r1; r++)
        memset(img->rgb + ((size_t)r * img->width + (size_t)c0) * 3, 0, (size_t)(c1 - c0) * 3);
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

mc_aug_layout mc_aug_layout_datacompdr(void) {
    mc_aug_layout l = {0};
    l.random_resized_crop = 1;
    l.rand_augment = 1;
    l.rand_augment_num_ops = 2;
    return l;
}

/* Python truthiness of a config value ("enable"). */
static int aug_truthy(const mc_json *v) {
    switch (v->type) {
        case MC_JSON_NULL: return 0;
        case MC_JSON_BOOL: return v->boolean;
        case MC_JSON_NUMBER: return v->number != 0;
        case MC_JSON_STRING:
        case MC_JSON_ARRAY:
        case MC_JSON_OBJECT: return v->len != 0;
    }
    return 1;
}

mc_status mc_aug_layout_from_config(const mc_json *config, mc_aug_layout *out, mc_error *err) {
    memset(out, 0, sizeof *out);
    if (!config || config->type != MC_JSON_OBJECT)
        return mc_fail(err, MC_ERR_FORMAT, "augmentation config: not an object");
    for (size_t i = 0; i < config->len; i++) {
        const char *k = config->keys[i];
        const mc_json *v = &config->items[i];
        if (v->type != MC_JSON_OBJECT)
            return mc_fail(err, MC_ERR_FORMAT, "augmentation config: \"%s\" is not an object", k);
        const mc_json *en = mc_json_get(v, "enable");
        if (en && !aug_truthy(en)) continue;
        if (!strcmp(k, "random_resized_crop")) {
            out->random_resized_crop = 1;
        } else if (!strcmp(k, "random_horizontal_flip")) {
            out->random_horizontal_flip = 1;
        } else if (!strcmp(k, "rand_augment")) {
            out->rand_augment = 1;
            const mc_json *n = mc_json_get(v, "num_ops");
            out->rand_augment_num_ops = 2;
            if (n) {
                if (n->type != MC_JSON_NUMBER || n->number != floor(n->number) || n->number < 0 ||
                    n->number > MC_AUG_MAX_OPS)
                    return mc_fail(err, MC_ERR_FORMAT, "rand_augment: bad num_ops");
                out->rand_augment_num_ops = (int)n->number;
            }
            const mc_json *f = mc_json_get(v, "fill");
            if (mc_json_get(v, "interpolation") ||
                (f && !(f->type == MC_JSON_NULL || (f->type == MC_JSON_NUMBER && f->number == 0))))
                return mc_fail(err, MC_ERR_UNSUPPORTED,
                               "rand_augment: only nearest interpolation and black fill are supported");
        } else if (!strcmp(k, "random_erase")) {
            out->random_erase = 1;
        } else if (!strcmp(k, "resize") || !strcmp(k, "random_crop") || !strcmp(k, "mixup") ||
                   !strcmp(k, "cutmix")) {
            return mc_fail(err, MC_ERR_UNSUPPORTED, "augmentation config: \"%s\" is not supported", k);
        }
        /* uint8, center_crop, to_tensor, normalize store nothing; other names
         * are ignored by the reference too */
    }
    return MC_OK;
}

mc_status mc_aug_layout_from_file(const char *path, mc_aug_layout *out, mc_error *err) {
    char *text = NULL;
    size_t len = 0;
    mc_json *root = NULL;
    mc_status st = mc_file_read_all(path, 16u << 20, &text, &len, err);   /* its errors name the file */
    if (st != MC_OK) return st;
    st = mc_json_parse(text, len, &root, err);
    free(text);
    if (st == MC_OK) {
        const mc_json *aug = mc_json_path(root, "reinforce.image_augmentation");
        st = mc_aug_layout_from_config(aug ? aug : root, out, err);
    }
    mc_json_free(root);
    if (st != MC_OK) mc_error_prefix(err, "%s", path);
    return st;
}

static int aug_json_ll(const mc_json *v, long long lo, long long hi, long long *out) {
    if (!v || v->type != MC_JSON_NUMBER || !isfinite(v->number) || v->number != floor(v->number) ||
        v->number < (double)lo || v->number > (double)hi)
        return 0;
    *out = (long long)v->number;
    return 1;
}

mc_status mc_aug_parse(const mc_json *entry, const mc_aug_layout *layout, mc_aug_params *out,
                       mc_error *err) {
    mc_aug_layout dflt = mc_aug_layout_datacompdr();
    if (!layout) layout = &dflt;
    memset(out, 0, sizeof *out);
    size_t want = (size_t)(!!layout->random_resized_crop + !!layout->random_horizontal_flip +
                           !!layout->rand_augment + !!layout->random_erase);
    if (!entry || entry->type != MC_JSON_ARRAY)
        return mc_fail(err, MC_ERR_FORMAT, "augmentation parameters: not a list");
    if (entry->len != want)
        return mc_fail(err, MC_ERR_FORMAT,
                       "augmentation parameters: %zu entries, the layout has %zu transforms",
                       entry->len, want);
    size_t k = 0;
    if (layout->random_resized_crop) {
        const mc_json *c = &entry->items[k++];
        if (c->type != MC_JSON_NULL) {
            long long v[4];
            if (c->type != MC_JSON_ARRAY || c->len != 4)
                return mc_fail(err, MC_ERR_FORMAT, "random_resized_crop: not [top, left, height, width]");
            for (int i = 0; i < 4; i++)
                if (!aug_json_ll(&c->items[i], i < 2 ? 0 : 1, INT_MAX, &v[i]))
                    return mc_fail(err, MC_ERR_FORMAT,
                                   "random_resized_crop: value %d is not a %s integer", i,
                                   i < 2 ? "non-negative" : "positive");
            out->has_crop = 1;
            out->crop_top = (int)v[0];
            out->crop_left = (int)v[1];
            out->crop_h = (int)v[2];
            out->crop_w = (int)v[3];
        }
    }
    if (layout->random_horizontal_flip) {
        const mc_json *f = &entry->items[k++];
        if (f->type == MC_JSON_BOOL) {
            out->has_flip = 1;
            out->flip = f->boolean;
        } else if (f->type == MC_JSON_NUMBER && (f->number == 0 || f->number == 1)) {
            out->has_flip = 1;
            out->flip = f->number != 0;
        } else if (f->type != MC_JSON_NULL) {
            return mc_fail(err, MC_ERR_FORMAT, "random_horizontal_flip: not a bool");
        }
    }
    if (layout->rand_augment) {
        const mc_json *r = &entry->items[k++];
        if (r->type != MC_JSON_NULL) {
            if (r->type != MC_JSON_ARRAY)
                return mc_fail(err, MC_ERR_FORMAT, "rand_augment: not a list of [op, magnitude]");
            size_t n = r->len;
            if (layout->rand_augment_num_ops > 0) {
                if (n < (size_t)layout->rand_augment_num_ops)
                    return mc_fail(err, MC_ERR_FORMAT, "rand_augment: %zu ops stored, %d applied", n,
                                   layout->rand_augment_num_ops);
                n = (size_t)layout->rand_augment_num_ops; /* the reference applies the first num_ops */
            }
            if (n > MC_AUG_MAX_OPS)
                return mc_fail(err, MC_ERR_FORMAT, "rand_augment: %zu ops (at most %d)", n,
                               MC_AUG_MAX_OPS);
            for (size_t i = 0; i < n; i++) {
                const mc_json *pr = &r->items[i];
                long long op;
                if (pr->type != MC_JSON_ARRAY || pr->len != 2 ||
                    pr->items[1].type != MC_JSON_NUMBER)
                    return mc_fail(err, MC_ERR_FORMAT, "rand_augment: op %zu is not [index, magnitude]", i);
                if (!aug_json_ll(&pr->items[0], 0, MC_AUG_OP_COUNT - 1, &op))
                    return mc_fail(err, MC_ERR_FORMAT, "rand_augment: op %zu: unknown op index", i);
                mc_status st = aug_check_magnitude((int)op, pr->items[1].number, err);
                if (st != MC_OK) {
                    mc_error_prefix(err, "rand_augment: op %zu", i);
                    return st;
                }
                out->op[i] = (int)op;
                out->mag[i] = pr->items[1].number;
            }
            out->has_randaug = 1;
            out->n_ops = (int)n;
        }
    }
    if (layout->random_erase) {
        const mc_json *e = &entry->items[k++];
        if (e->type != MC_JSON_NULL) {
            long long v[4];
            if (e->type != MC_JSON_ARRAY || e->len != 4)
                return mc_fail(err, MC_ERR_FORMAT, "random_erase: not [x, y, h, w]");
            for (int i = 0; i < 4; i++)
                if (!aug_json_ll(&e->items[i], -AUG_MAX_ERASE_COORD, AUG_MAX_ERASE_COORD, &v[i]))
                    return mc_fail(err, MC_ERR_FORMAT, "random_erase: value %d is not an integer", i);
            out->has_erase = 1;
            out->erase_x = v[0];
            out->erase_y = v[1];
            out->erase_h = v[2];
            out->erase_w = v[3];
        }
    }
    return MC_OK;
}

mc_status mc_aug_parse_paug(const char *text, size_t len, const mc_aug_layout *layout,
                            mc_aug_params **out, size_t *n, mc_error *err) {
    *out = NULL;
    *n = 0;
    mc_json *root = NULL, *inner = NULL;
    mc_status st = mc_json_parse(text, len, &root, err);
    if (st != MC_OK) {
        mc_error_prefix(err, "paug.json");
        return st;
    }
    const mc_json *list = mc_json_get(root, "param_aug");
    if (!list) {
        mc_json_free(root);
        return mc_fail(err, MC_ERR_FORMAT, "paug.json: no \"param_aug\" member");
    }
    if (list->type == MC_JSON_STRING) {
        st = mc_json_parse(list->string, list->len, &inner, err);
        if (st != MC_OK) {
            mc_json_free(root);
            mc_error_prefix(err, "paug.json: param_aug string");
            return st;
        }
        list = inner;
    }
    if (list->type != MC_JSON_ARRAY) {
        mc_json_free(inner);
        mc_json_free(root);
        return mc_fail(err, MC_ERR_FORMAT, "paug.json: param_aug is not a list");
    }
    mc_aug_params *p = list->len ? mc_calloc_array(list->len, sizeof *p) : NULL;
    if (list->len && !p) {
        mc_json_free(inner);
        mc_json_free(root);
        return mc_fail(err, MC_ERR_NOMEM, "paug.json: out of memory");
    }
    for (size_t i = 0; i < list->len; i++) {
        st = mc_aug_parse(&list->items[i], layout, &p[i], err);
        if (st != MC_OK) {
            mc_error_prefix(err, "paug.json: augmentation %zu", i);
            free(p);
            mc_json_free(inner);
            mc_json_free(root);
            return st;
        }
    }
    *n = list->len;
    *out = p;
    mc_json_free(inner);
    mc_json_free(root);
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* Re-application                                                            */
/* ------------------------------------------------------------------------ */

mc_status mc_aug_reapply(const mc_image *in, const mc_aug_params *p, int size, mc_interp interp,
                         mc_image *out, mc_error *err) {
    mc_status st;
    if (!out) return mc_fail(err, MC_ERR_INVALID_ARG, "reapply: no output image");
    memset(out, 0, sizeof *out);
    if ((st = aug_check_image(in, "reapply", err)) != MC_OK) return st;
    if (!p) return mc_fail(err, MC_ERR_INVALID_ARG, "reapply: no parameters");

    if (p->has_crop) {
        if (size < 1 || size > MC_AUG_MAX_SIZE)
            return mc_fail(err, MC_ERR_INVALID_ARG, "reapply: output size %d (1..%d)", size,
                           MC_AUG_MAX_SIZE);
        long long t = p->crop_top, l = p->crop_left, h = p->crop_h, w = p->crop_w;
        if (t < 0 || l < 0 || h < 1 || w < 1 || t + h > in->height || l + w > in->width)
            return mc_fail(err, MC_ERR_FORMAT,
                           "reapply: crop box top %lld left %lld %lld x %lld does not fit the "
                           "%d x %d image (wrong image for these parameters?)",
                           t, l, w, h, in->width, in->height);
        mc_image crop = {(int)w, (int)h, aug_alloc_pixels((int)w, (int)h)};
        if (!crop.rgb) return mc_fail(err, MC_ERR_NOMEM, "reapply: out of memory");
        for (long long y = 0; y < h; y++)
            memcpy(crop.rgb + (size_t)y * w * 3, in->rgb + ((size_t)(t + y) * in->width + l) * 3,
                   (size_t)w * 3);
        st = mc_image_resample(&crop, size, size, interp, out, err);
        mc_image_free(&crop);
        if (st != MC_OK) {
            mc_error_prefix(err, "reapply");
            return st;
        }
    } else {
        out->rgb = aug_alloc_pixels(in->width, in->height);
        if (!out->rgb) return mc_fail(err, MC_ERR_NOMEM, "reapply: out of memory");
        out->width = in->width;
        out->height = in->height;
        memcpy(out->rgb, in->rgb, (size_t)in->width * in->height * 3);
    }

    if (p->has_flip && p->flip && (st = mc_aug_hflip(out, err)) != MC_OK) goto fail;
    if (p->has_randaug) {
        if (p->n_ops < 0 || p->n_ops > MC_AUG_MAX_OPS) {
            st = mc_fail(err, MC_ERR_INVALID_ARG, "reapply: %d RandAugment ops", p->n_ops);
            goto fail;
        }
        for (int i = 0; i < p->n_ops; i++) {
            if ((st = mc_aug_apply_op(out, p->op[i], p->mag[i], err)) != MC_OK) {
                mc_error_prefix(err, "reapply: op %d (%s)", i, mc_aug_op_name(p->op[i]));
                goto fail;
            }
        }
    }
    if (p->has_erase &&
        (st = mc_aug_erase(out, p->erase_x, p->erase_y, p->erase_h, p->erase_w, err)) != MC_OK)
        goto fail;
    return MC_OK;

fail:
    mc_image_free(out);
    return st;
}
