/*
 * reinforce/sampler.c - fresh augmentation parameters with the reference's
 * distributions and their compressed JSON form (see sampler.h).
 */
#include "reinforce/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- config */

static int cfg_number(const mc_json *obj, const char *key, double dflt, double *out) {
    const mc_json *v = mc_json_get(obj, key);
    if (!v || v->type == MC_JSON_NULL) { *out = dflt; return 1; }
    if (v->type != MC_JSON_NUMBER || !isfinite(v->number)) return 0;
    *out = v->number;
    return 1;
}

static int cfg_pair(const mc_json *obj, const char *key, double d0, double d1, double out[2]) {
    const mc_json *v = mc_json_get(obj, key);
    if (!v || v->type == MC_JSON_NULL) { out[0] = d0; out[1] = d1; return 1; }
    if (v->type != MC_JSON_ARRAY || v->len != 2) return 0;
    for (int i = 0; i < 2; i++) {
        if (v->items[i].type != MC_JSON_NUMBER || !isfinite(v->items[i].number)) return 0;
        out[i] = v->items[i].number;
    }
    return out[0] <= out[1];
}

static int cfg_int(const mc_json *obj, const char *key, int dflt, int lo, int hi, int *out) {
    double x;
    if (!cfg_number(obj, key, dflt, &x) || x != floor(x) || x < lo || x > hi) return 0;
    *out = (int)x;
    return 1;
}

mc_status mc_rf_aug_config_parse(const char *text, size_t len, const char *label, mc_rf_aug_config *out,
                                 mc_error *err) {
    memset(out, 0, sizeof *out);
    mc_json *root = NULL;
    mc_status st = mc_json_parse(text, len, &root, err);
    if (st != MC_OK) {
        mc_error_prefix(err, "%s", label);
        return st;
    }
    const mc_json *aug = mc_json_path(root, "reinforce.image_augmentation");
    if (!aug) aug = root;
    st = mc_aug_layout_from_config(aug, &out->layout, err);
    if (st != MC_OK) {
        mc_error_prefix(err, "%s", label);
        goto done;
    }
    const mc_json *rrc = mc_json_get(aug, "random_resized_crop");
    if (!out->layout.random_resized_crop || !rrc) {
        st = mc_fail(err, MC_ERR_UNSUPPORTED, "%s: the augmentation has no random_resized_crop (the teachers need a fixed size)",
                     label);
        goto done;
    }
    if (out->layout.random_erase) {
        st = mc_fail(err, MC_ERR_UNSUPPORTED, "%s: drawing random_erase parameters is not supported", label);
        goto done;
    }
    const mc_json *sz = mc_json_get(rrc, "size");
    if (sz && sz->type == MC_JSON_ARRAY && sz->len == 2 && sz->items[0].type == MC_JSON_NUMBER &&
        sz->items[1].type == MC_JSON_NUMBER && sz->items[0].number == sz->items[1].number)
        sz = &sz->items[0];
    if (!sz || sz->type != MC_JSON_NUMBER || sz->number != floor(sz->number) || sz->number < 1 ||
        sz->number > MC_AUG_MAX_SIZE) {
        st = mc_fail(err, MC_ERR_FORMAT, "%s: random_resized_crop.size must be one side in pixels", label);
        goto done;
    }
    out->size = (int)sz->number;
    const char *interp = mc_json_str(mc_json_get(rrc, "interpolation"), "bilinear");
    if (!strcmp(interp, "bicubic")) out->interp = MC_INTERP_BICUBIC;
    else if (!strcmp(interp, "bilinear")) out->interp = MC_INTERP_BILINEAR;
    else {
        st = mc_fail(err, MC_ERR_UNSUPPORTED, "%s: random_resized_crop.interpolation '%s' is not supported", label, interp);
        goto done;
    }
    if (!cfg_pair(rrc, "scale", 0.08, 1.0, out->scale) || !(out->scale[0] > 0) ||
        !cfg_pair(rrc, "ratio", 3.0 / 4.0, 4.0 / 3.0, out->ratio) || !(out->ratio[0] > 0)) {
        st = mc_fail(err, MC_ERR_FORMAT, "%s: random_resized_crop.scale / ratio must be [lo, hi] with 0 < lo <= hi",
                     label);
        goto done;
    }
    const mc_json *fl = mc_json_get(aug, "random_horizontal_flip");
    if (!cfg_number(fl, "p", 0.5, &out->flip_p) || out->flip_p < 0 || out->flip_p > 1) {
        st = mc_fail(err, MC_ERR_FORMAT, "%s: random_horizontal_flip.p must be in [0, 1]", label);
        goto done;
    }
    const mc_json *ra = mc_json_get(aug, "rand_augment");
    if (!cfg_int(ra, "num_ops", 2, 0, MC_AUG_MAX_OPS, &out->ra_num_ops) ||
        !cfg_int(ra, "num_magnitude_bins", 31, 2, 1000, &out->ra_bins) ||
        !cfg_int(ra, "magnitude", 9, 0, out->ra_bins - 1, &out->ra_magnitude) ||
        !cfg_number(ra, "p", 1.0, &out->ra_p) || out->ra_p < 0 || out->ra_p > 1) {
        st = mc_fail(err, MC_ERR_FORMAT,
                     "%s: rand_augment: num_ops (0..%d), num_magnitude_bins (>= 2), magnitude (< bins), p (0..1)",
                     label, MC_AUG_MAX_OPS);
        goto done;
    }
    const mc_json *nm = mc_json_get(aug, "normalize");
    for (int i = 0; i < 3; i++) { out->mean[i] = 0.0f; out->std[i] = 1.0f; }
    if (nm && !(mc_json_get(nm, "enable") && !mc_json_bool(mc_json_get(nm, "enable"), true))) {
        for (int k = 0; k < 2; k++) {
            const mc_json *a = mc_json_get(nm, k ? "std" : "mean");
            float *dst = k ? out->std : out->mean;
            if (!a) continue;
            if (a->type != MC_JSON_ARRAY || a->len != 3) goto bad_norm;
            for (int i = 0; i < 3; i++) {
                if (a->items[i].type != MC_JSON_NUMBER) goto bad_norm;
                dst[i] = (float)a->items[i].number;
            }
        }
        for (int i = 0; i < 3; i++)
            if (!(out->std[i] > 0)) goto bad_norm;
    }
    goto done;
bad_norm:
    st = mc_fail(err, MC_ERR_FORMAT, "%s: normalize.mean / std must be three numbers (std > 0)", label);
done:
    mc_json_free(root);
    return st;
}

/* ------------------------------------------------------------------- rng */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

void mc_rf_rng_seed(mc_rf_rng *r, uint64_t seed, const char *shard, const char *key) {
    uint64_t h = 0xCBF29CE484222325ull;
    unsigned char sb[8];
    for (int i = 0; i < 8; i++) sb[i] = (unsigned char)(seed >> (8 * i));
    h = fnv1a(h, sb, 8);
    h = fnv1a(h, shard ? shard : "", strlen(shard ? shard : "") + 1);
    h = fnv1a(h, key ? key : "", strlen(key ? key : ""));
    r->state = h;
    splitmix(&r->state);
}

double mc_rf_uniform(mc_rf_rng *r, double a, double b) {
    double u = (double)(splitmix(&r->state) >> 11) * 0x1p-53;
    return a + (b - a) * u;
}

uint64_t mc_rf_randint(mc_rf_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = splitmix(&r->state);
        if (x < limit) return x % n;
    }
}

/* ------------------------------------------------------------ magnitudes */

/* torch.linspace(start, end, steps)[idx] in float32: the first half counts
 * up from start, the second down from end (aten's linspace kernel). */
static float linspace_at(float start, float end, int steps, int idx) {
    float step = (end - start) / (float)(steps - 1);
    volatile float prod;   /* no fused multiply-add: torch rounds the product */
    if (idx < steps / 2) {
        prod = step * (float)idx;
        return start + prod;
    }
    prod = step * (float)(steps - idx - 1);
    return end - prod;
}

double mc_rf_magnitude(const mc_rf_aug_config *c, int op, int *is_signed) {
    int bins = c->ra_bins, m = c->ra_magnitude;
    float side = (float)c->size;
    *is_signed = 0;
    switch (op) {
    case MC_AUG_SHEAR_X:
    case MC_AUG_SHEAR_Y: *is_signed = 1; return linspace_at(0.0f, 0.3f, bins, m);
    case MC_AUG_TRANSLATE_X:
    case MC_AUG_TRANSLATE_Y:
        *is_signed = 1;
        return linspace_at(0.0f, (float)(150.0 / 331.0 * (double)side), bins, m);
    case MC_AUG_ROTATE: *is_signed = 1; return linspace_at(0.0f, 30.0f, bins, m);
    case MC_AUG_BRIGHTNESS:
    case MC_AUG_COLOR:
    case MC_AUG_CONTRAST:
    case MC_AUG_SHARPNESS: *is_signed = 1; return linspace_at(0.0f, 0.9f, bins, m);
    case MC_AUG_POSTERIZE: {
        /* 8 - (arange(bins) / ((bins - 1) / 4)).round().int() */
        float q = (float)m / (float)((bins - 1) / 4.0);
        return (double)(8 - (int)rintf(q));
    }
    case MC_AUG_SOLARIZE: return linspace_at(255.0f, 0.0f, bins, m);
    default: return 0.0;   /* Identity, AutoContrast, Equalize */
    }
}

/* ------------------------------------------------------------- sampling */

void mc_rf_sample(const mc_rf_aug_config *c, int w, int h, mc_rf_rng *rng, mc_aug_params *out) {
    memset(out, 0, sizeof *out);
    if (c->layout.random_resized_crop) {
        /* torchvision RandomResizedCrop.get_params */
        double area = (double)w * (double)h;
        double lr0 = log(c->ratio[0]), lr1 = log(c->ratio[1]);
        int found = 0;
        for (int attempt = 0; attempt < 10 && !found; attempt++) {
            double target = area * mc_rf_uniform(rng, c->scale[0], c->scale[1]);
            double aspect = exp(mc_rf_uniform(rng, lr0, lr1));
            int cw = (int)rint(sqrt(target * aspect)), ch = (int)rint(sqrt(target / aspect));
            if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
                out->crop_top = (int)mc_rf_randint(rng, (uint64_t)(h - ch + 1));
                out->crop_left = (int)mc_rf_randint(rng, (uint64_t)(w - cw + 1));
                out->crop_h = ch;
                out->crop_w = cw;
                found = 1;
            }
        }
        if (!found) {   /* central crop */
            double in_ratio = (double)w / (double)h;
            int cw = w, ch = h;
            if (in_ratio < c->ratio[0]) ch = (int)rint(cw / c->ratio[0]);
            else if (in_ratio > c->ratio[1]) cw = (int)rint(ch * c->ratio[1]);
            out->crop_h = ch;
            out->crop_w = cw;
            out->crop_top = (h - ch) / 2;
            out->crop_left = (w - cw) / 2;
        }
        out->has_crop = 1;
    }
    if (c->layout.random_horizontal_flip) {
        out->has_flip = 1;
        out->flip = mc_rf_uniform(rng, 0.0, 1.0) < c->flip_p;
    }
    if (c->layout.rand_augment) {
        /* skipped when rand() > p: stored as null */
        if (mc_rf_uniform(rng, 0.0, 1.0) <= c->ra_p) {
            out->has_randaug = 1;
            out->n_ops = c->ra_num_ops;
            for (int i = 0; i < c->ra_num_ops; i++) {
                int op = (int)mc_rf_randint(rng, MC_AUG_OP_COUNT), sgn = 0;
                double mag = mc_rf_magnitude(c, op, &sgn);
                if (sgn && mc_rf_randint(rng, 2)) mag = -mag;
                out->op[i] = op;
                out->mag[i] = mag;
            }
        }
    }
}

/* ------------------------------------------------------------- the JSON */

int mc_rf_format_double(double v, char *buf, size_t cap) {
    if (!isfinite(v)) return snprintf(buf, cap, "%s", isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
    if (v == 0) return snprintf(buf, cap, "%s", signbit(v) ? "-0.0" : "0.0");
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e = [-]d[.ddd]e[+-]XX: the digits and the decimal exponent */
    char digits[24];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int exp10 = atoi(q + 1);
    char out[64];
    int n = 0;
    if (neg) out[n++] = '-';
    if (exp10 >= -5 && exp10 < 16) {   /* repr's fixed range: 1e-05 and below go scientific */
        if (exp10 < 0) {
            if (exp10 == -5) goto sci;
            n += snprintf(out + n, sizeof out - n, "0.");
            for (int i = 0; i < -exp10 - 1; i++) out[n++] = '0';
            n += snprintf(out + n, sizeof out - n, "%s", digits);
        } else {
            for (int i = 0; i <= exp10; i++) out[n++] = i < nd ? digits[i] : '0';
            out[n++] = '.';
            if (nd > exp10 + 1) n += snprintf(out + n, sizeof out - n, "%s", digits + exp10 + 1);
            else out[n++] = '0';
        }
        out[n] = 0;
        return snprintf(buf, cap, "%s", out);
    }
sci:
    out[n++] = digits[0];
    if (nd > 1) {
        out[n++] = '.';
        n += snprintf(out + n, sizeof out - n, "%s", digits + 1);
    }
    n += snprintf(out + n, sizeof out - n, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    return snprintf(buf, cap, "%s", out);
}

typedef struct jbuf {
    char *p;
    size_t cap, n;
} jbuf;

static void jb_puts(jbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n < b->cap) {
        size_t room = b->cap - b->n;
        memcpy(b->p + b->n, s, l < room ? l : room);
    }
    b->n += l;
}

size_t mc_rf_compress_json(const mc_rf_aug_config *c, const mc_aug_params *p, char *buf, size_t cap) {
    jbuf b = {buf, cap, 0};
    char t[96];
    int first = 1;
    jb_puts(&b, "[");
    if (c->layout.random_resized_crop) {
        snprintf(t, sizeof t, "[%d, %d, %d, %d]", p->crop_top, p->crop_left, p->crop_h, p->crop_w);
        jb_puts(&b, t);
        first = 0;
    }
    if (c->layout.random_horizontal_flip) {
        if (!first) jb_puts(&b, ", ");
        jb_puts(&b, p->flip ? "true" : "false");
        first = 0;
    }
    if (c->layout.rand_augment) {
        if (!first) jb_puts(&b, ", ");
        if (!p->has_randaug) {
            jb_puts(&b, "null");
        } else {
            jb_puts(&b, "[");
            for (int i = 0; i < p->n_ops; i++) {
                char m[40];
                mc_rf_format_double(p->mag[i], m, sizeof m);
                snprintf(t, sizeof t, "%s[%d, %s]", i ? ", " : "", p->op[i], m);
                jb_puts(&b, t);
            }
            jb_puts(&b, "]");
        }
    }
    jb_puts(&b, "]");
    if (cap) buf[b.n < cap ? b.n : cap - 1] = 0;
    return b.n;
}
