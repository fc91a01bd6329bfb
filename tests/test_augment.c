/*
 * test_augment.c - re-application of DataCompDR's stored augmentations:
 * every KEY/augA/224 and KEY/augA/256 tensor of
 * datacompdr/expected_reinforcements.safetensors byte for byte (Pillow 9.4 /
 * torchvision 0.14 goldens), each op alone on synthetic images with results
 * derived by hand, flip and random erasing, hostile parameters.  (The time
 * per sample: bench/bench_augment.c.)
 */
#include "test.h"

#include "core/core.h"
#include "data/augment.h"
#include "data/tar.h"
#include "mobileclip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A member of a tar held in memory, through the shard reader's tar layer
 * (malloc'd copy, or NULL when absent). */
static uint8_t *tar_member(const uint8_t *tar, size_t size, const char *name, size_t *len) {
    mc_tar *t = NULL;
    mc_error e;
    mc_error_clear(&e);
    mc_tar_params tp = mc_tar_default_params();
    if (mc_tar_open_memory(tar, size, "shard", &tp, &t, &e) != MC_OK) return NULL;
    uint8_t *out = NULL;
    for (;;) {
        mc_tar_member m;
        int eof = 0;
        if (mc_tar_next(t, &m, &eof, &e) != MC_OK || eof) break;
        if (!strcmp(m.name, name)) {
            *len = m.size;
            out = mc_tar_take_data(t);
            break;
        }
    }
    mc_tar_close(t);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Fixture parity                                                            */
/* ------------------------------------------------------------------------ */

static const char *const keys[] = {"000000000", "000000001", "000000002"};
#define N_KEYS 3
#define N_AUG_CHECKED 6

static void describe(char *buf, size_t cap, const mc_aug_params *p) {
    int n = snprintf(buf, cap, "crop %d,%d %dx%d ops", p->crop_top, p->crop_left, p->crop_w, p->crop_h);
    for (int i = 0; i < p->n_ops && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, " %s(%.17g)", mc_aug_op_name(p->op[i]), p->mag[i]);
}

static void test_fixture(void) {
    mc_checkpoint *ck = NULL;
    mc_error e;
    mc_status st = mc_checkpoint_open(fixture("datacompdr/expected_reinforcements.safetensors"), &ck, &e);
    CHECK(st == MC_OK, "open expected_reinforcements.safetensors: %s", e.message);
    if (st != MC_OK) return;
    size_t tar_len = 0;
    char *tarc = NULL;
    st = mc_file_read_all(fixture("datacompdr/shards/00000000.tar"), (size_t)64 << 20, &tarc, &tar_len, &e);
    CHECK(st == MC_OK, "read datacompdr/shards/00000000.tar: %s", e.message);
    uint8_t *tar = (uint8_t *)tarc;
    if (!tar) {
        mc_checkpoint_close(ck);
        return;
    }

    /* Every augA tensor of the file must be one that this test checks. */
    int in_file = 0;
    for (size_t i = 0; i < mc_checkpoint_count(ck); i++)
        if (strstr(mc_checkpoint_tensor(ck, i)->name, "/aug")) in_file++;

    /* The file's own augmentation config gives the layout. */
    const char *cfg = mc_checkpoint_metadata(ck, "augmentation_config");
    CHECK(cfg != NULL, "augmentation_config metadata");
    mc_aug_layout layout = mc_aug_layout_datacompdr();
    if (cfg) {
        mc_json *j = NULL;
        st = mc_json_parse(cfg, strlen(cfg), &j, &e);
        CHECK(st == MC_OK, "augmentation_config: %s", e.message);
        if (st == MC_OK) {
            st = mc_aug_layout_from_config(j, &layout, &e);
            CHECK(st == MC_OK, "layout: %s", e.message);
            CHECK(layout.random_resized_crop == 1 && layout.rand_augment == 1 &&
                      layout.rand_augment_num_ops == 2 && !layout.random_horizontal_flip &&
                      !layout.random_erase, "layout of the DataCompDR config");
            mc_json_free(j);
        }
    }

    int checked = 0, equal = 0;
    for (int k = 0; k < N_KEYS; k++) {
        char name[64];
        size_t jpg_len = 0, paug_len = 0;
        snprintf(name, sizeof name, "%s.jpg", keys[k]);
        uint8_t *jpg = tar_member(tar, tar_len, name, &jpg_len);
        CHECK(jpg != NULL, "%s not in the shard", name);
        snprintf(name, sizeof name, "%s.paug.json", keys[k]);
        uint8_t *paug = tar_member(tar, tar_len, name, &paug_len);
        CHECK(paug != NULL, "%s not in the shard", name);
        if (!jpg || !paug) {
            free(jpg);
            free(paug);
            continue;
        }

        mc_aug_params *params = NULL;
        size_t n_params = 0;
        st = mc_aug_parse_paug((const char *)paug, paug_len, &layout, &params, &n_params, &e);
        CHECK(st == MC_OK && n_params == 30, "%s: %zu params: %s", keys[k], n_params,
              st == MC_OK ? "" : e.message);
        free(paug);
        if (st != MC_OK) {
            free(jpg);
            continue;
        }
        /* every stored augmentation parses (30), the first N_AUG_CHECKED have goldens */
        mc_image img;
        st = mc_image_load_memory(jpg, jpg_len, 0, &img, &e);
        free(jpg);
        CHECK(st == MC_OK, "%s.jpg: %s", keys[k], e.message);
        if (st != MC_OK) {
            free(params);
            continue;
        }
        for (int a = 0; a < N_AUG_CHECKED && (size_t)a < n_params; a++) {
            for (int s = 0; s < 2; s++) {
                int size = s ? 256 : 224;
                char tname[96], desc[256];
                snprintf(tname, sizeof tname, "%s/aug%d/%d", keys[k], a, size);
                const mc_tensor_info *t = mc_checkpoint_find(ck, tname);
                CHECK(t != NULL, "%s missing from the fixture", tname);
                if (!t) continue;
                CHECK(t->dtype == MC_DTYPE_U8 && t->ndim == 3 && t->shape[0] == size &&
                          t->shape[1] == size && t->shape[2] == 3, "%s: dtype/shape", tname);
                checked++;
                mc_image out;
                st = mc_aug_reapply(&img, &params[a], size, MC_INTERP_BICUBIC, &out, &e);
                CHECK(st == MC_OK, "%s: %s", tname, e.message);
                if (st != MC_OK) continue;
                const uint8_t *want = t->data;
                size_t n = (size_t)size * size * 3, diff = 0;
                int maxd = 0;
                for (size_t i = 0; i < n; i++) {
                    int d = abs((int)out.rgb[i] - (int)want[i]);
                    if (d) diff++;
                    if (d > maxd) maxd = d;
                }
                describe(desc, sizeof desc, &params[a]);
                CHECK(diff == 0, "%s [%s]: %zu of %zu bytes differ (max %d)", tname, desc, diff, n, maxd);
                if (diff == 0) equal++;
                mc_image_free(&out);
            }
        }
        mc_image_free(&img);
        free(params);
    }
    printf("fixture: %d of %d reapplied augmentations byte-equal (%d aug tensors in the file)\n",
           equal, checked, in_file);
    CHECK(checked == in_file && checked == N_KEYS * N_AUG_CHECKED * 2,
          "checked %d tensors, the file holds %d", checked, in_file);
    free(tar);
    mc_checkpoint_close(ck);
}

/* ------------------------------------------------------------------------ */
/* Ops alone on synthetic images                                             */
/* ------------------------------------------------------------------------ */

static mc_image make_image(int w, int h, uint32_t seed) {
    mc_image im = {w, h, malloc((size_t)w * h * 3)};
    uint32_t s = seed;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        s = s * 1664525u + 1013904223u;
        im.rgb[i] = (uint8_t)(s >> 24);
    }
    return im;
}

static mc_image clone(const mc_image *a) {
    mc_image c = {a->width, a->height, malloc((size_t)a->width * a->height * 3)};
    memcpy(c.rgb, a->rgb, (size_t)a->width * a->height * 3);
    return c;
}

static int same(const mc_image *a, const mc_image *b) {
    return a->width == b->width && a->height == b->height &&
           !memcmp(a->rgb, b->rgb, (size_t)a->width * a->height * 3);
}

static const uint8_t *px(const mc_image *im, int x, int y) {
    return im->rgb + ((size_t)y * im->width + x) * 3;
}

static void test_lut_ops(void) {
    mc_error e;
    mc_image src = make_image(37, 23, 1), im;

    /* Identity */
    im = clone(&src);
    CHECK(mc_aug_apply_op(&im, MC_AUG_IDENTITY, 0.0, &e) == MC_OK && same(&im, &src), "identity");
    mc_image_free(&im);

    /* Posterize: keep the top bits */
    const struct { double mag; int mask; } post[] = {{7.0, 0xFE}, {4.9, 0xF0}, {1.0, 0x80},
                                                      {8.0, 0xFF}, {0.0, 0x00}, {-3.0, 0x00}};
    for (size_t c = 0; c < sizeof post / sizeof post[0]; c++) {
        im = clone(&src);
        mc_status st = mc_aug_apply_op(&im, MC_AUG_POSTERIZE, post[c].mag, &e);
        int ok = st == MC_OK;
        for (size_t i = 0; ok && i < (size_t)37 * 23 * 3; i++) ok = im.rgb[i] == (src.rgb[i] & post[c].mask);
        CHECK(ok, "posterize %g", post[c].mag);
        mc_image_free(&im);
    }
    im = clone(&src);
    CHECK(mc_aug_apply_op(&im, MC_AUG_POSTERIZE, 9.0, &e) != MC_OK, "posterize 9 bits rejected");
    mc_image_free(&im);

    /* Solarize: values >= threshold inverted */
    const double thr[] = {178.5, 0.0, 128.0, 256.0, -5.0};
    for (size_t c = 0; c < sizeof thr / sizeof thr[0]; c++) {
        im = clone(&src);
        int ok = mc_aug_apply_op(&im, MC_AUG_SOLARIZE, thr[c], &e) == MC_OK;
        for (size_t i = 0; ok && i < (size_t)37 * 23 * 3; i++) {
            int v = src.rgb[i];
            ok = im.rgb[i] == (v < thr[c] ? v : 255 - v);
        }
        CHECK(ok, "solarize %g", thr[c]);
        mc_image_free(&im);
    }
    mc_image_free(&src);

    /* Equalize on a known histogram: 32x32, four levels of 256 pixels each.
     * step = (1024 - 256) // 255 = 3; lut[v] = (1 + pixels below v) // 3:
     * 10 -> 0, 50 -> 257 // 3 = 85, 90 -> 513 // 3 = 171, 200 -> 769 // 3 = 256 -> 255. */
    {
        mc_image q = {32, 32, malloc(32 * 32 * 3)};
        const uint8_t lv[4] = {10, 50, 90, 200}, ex[4] = {0, 85, 171, 255};
        for (int i = 0; i < 1024; i++) memset(q.rgb + i * 3, lv[(i * 7) % 4], 3);
        int ok = mc_aug_apply_op(&q, MC_AUG_EQUALIZE, 0.0, &e) == MC_OK;
        for (int i = 0; ok && i < 1024; i++)
            ok = q.rgb[i * 3] == ex[(i * 7) % 4] && q.rgb[i * 3 + 2] == ex[(i * 7) % 4];
        CHECK(ok, "equalize on four levels");
        /* a single level: unchanged */
        memset(q.rgb, 77, 32 * 32 * 3);
        ok = mc_aug_apply_op(&q, MC_AUG_EQUALIZE, 0.0, &e) == MC_OK;
        for (int i = 0; ok && i < 1024 * 3; i++) ok = q.rgb[i] == 77;
        CHECK(ok, "equalize of a flat image");
        mc_image_free(&q);
    }

    /* AutoContrast: levels 0..85 in every band -> scale 3 exactly: v -> 3v;
     * a flat band is left alone. */
    {
        mc_image q = {86, 2, malloc(86 * 2 * 3)};
        for (int i = 0; i < 86 * 2; i++) {
            q.rgb[i * 3] = (uint8_t)(i % 86);
            q.rgb[i * 3 + 1] = (uint8_t)(85 - i % 86);
            q.rgb[i * 3 + 2] = 40; /* flat */
        }
        int ok = mc_aug_apply_op(&q, MC_AUG_AUTOCONTRAST, 0.0, &e) == MC_OK;
        for (int i = 0; ok && i < 86 * 2; i++)
            ok = q.rgb[i * 3] == 3 * (i % 86) && q.rgb[i * 3 + 1] == 3 * (85 - i % 86) && q.rgb[i * 3 + 2] == 40;
        CHECK(ok, "autocontrast 0..85 -> 0..255");
        mc_image_free(&q);
    }
}

static void test_enhance_ops(void) {
    mc_error e;
    mc_image src = make_image(19, 17, 7), im;
    const size_t n = (size_t)19 * 17 * 3;

    /* factor 1 (magnitude 0) is the image itself for every enhance op */
    for (int op = MC_AUG_BRIGHTNESS; op <= MC_AUG_SHARPNESS; op++) {
        im = clone(&src);
        CHECK(mc_aug_apply_op(&im, op, 0.0, &e) == MC_OK && same(&im, &src), "%s factor 1",
              mc_aug_op_name(op));
        mc_image_free(&im);
    }
    /* Brightness factor 0 -> black; factor 2 -> min(2v, 255); factor 0.5 -> v * 0.5 truncated */
    im = clone(&src);
    int ok = mc_aug_apply_op(&im, MC_AUG_BRIGHTNESS, -1.0, &e) == MC_OK;
    for (size_t i = 0; ok && i < n; i++) ok = im.rgb[i] == 0;
    CHECK(ok, "brightness 0");
    mc_image_free(&im);
    im = clone(&src);
    ok = mc_aug_apply_op(&im, MC_AUG_BRIGHTNESS, 1.0, &e) == MC_OK;
    for (size_t i = 0; ok && i < n; i++) ok = im.rgb[i] == (src.rgb[i] * 2 > 255 ? 255 : src.rgb[i] * 2);
    CHECK(ok, "brightness 2");
    mc_image_free(&im);
    im = clone(&src);
    ok = mc_aug_apply_op(&im, MC_AUG_BRIGHTNESS, -0.5, &e) == MC_OK;
    for (size_t i = 0; ok && i < n; i++) ok = im.rgb[i] == src.rgb[i] / 2;
    CHECK(ok, "brightness 0.5");
    mc_image_free(&im);

    /* Color factor 0 -> ITU-R 601 grey: pure red 255 -> 76, green -> 150, blue -> 29, grey v -> v */
    {
        mc_image q = {4, 1, malloc(12)};
        const uint8_t in[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 123, 123, 123};
        memcpy(q.rgb, in, 12);
        ok = mc_aug_apply_op(&q, MC_AUG_COLOR, -1.0, &e) == MC_OK;
        const uint8_t ex[4] = {76, 150, 29, 123};
        for (int i = 0; ok && i < 4; i++) ok = q.rgb[i * 3] == ex[i] && q.rgb[i * 3 + 1] == ex[i] && q.rgb[i * 3 + 2] == ex[i];
        CHECK(ok, "color 0: grey levels %d %d %d %d", q.rgb[0], q.rgb[3], q.rgb[6], q.rgb[9]);
        mc_image_free(&q);
    }
    /* Contrast factor 0 -> the rounded mean grey: half black, half white -> 127.5 -> 128 */
    {
        mc_image q = {8, 8, malloc(8 * 8 * 3)};
        for (int i = 0; i < 64; i++) memset(q.rgb + i * 3, i < 32 ? 0 : 255, 3);
        ok = mc_aug_apply_op(&q, MC_AUG_CONTRAST, -1.0, &e) == MC_OK;
        for (int i = 0; ok && i < 64 * 3; i++) ok = q.rgb[i] == 128;
        CHECK(ok, "contrast 0 -> mean 128");
        mc_image_free(&q);
    }
    /* Sharpness factor 0 -> the 3x3 smooth: one pixel of 130 on black gives
     * 130 * 5/13 + 0.5 -> 50 at the centre and 130/13 + 0.5 -> 10 around it;
     * a border pixel is copied. */
    {
        mc_image q = {7, 7, calloc(7 * 7 * 3, 1)};
        memset(q.rgb + (3 * 7 + 3) * 3, 130, 3);
        memset(q.rgb + (0 * 7 + 3) * 3, 200, 3); /* on the top border */
        ok = mc_aug_apply_op(&q, MC_AUG_SHARPNESS, -1.0, &e) == MC_OK;
        for (int y = 0; ok && y < 7; y++)
            for (int x = 0; ok && x < 7; x++) {
                int want = 0;
                if (x == 3 && y == 3) want = 50;
                else if (abs(x - 3) <= 1 && abs(y - 3) <= 1) want = 10;
                if (y == 1 && abs(x - 3) <= 1) want = 15; /* 200/13 + 0.5 */
                if (y == 0) want = x == 3 ? 200 : 0;
                ok = px(&q, x, y)[0] == want && px(&q, x, y)[2] == want;
                if (!ok) fprintf(stderr, "smooth at %d,%d: %d want %d\n", x, y, px(&q, x, y)[0], want);
            }
        CHECK(ok, "sharpness 0 = smooth");
        mc_image_free(&q);
    }
    mc_image_free(&src);
}

static void test_geometry_ops(void) {
    mc_error e;
    const int W = 40, H = 30;
    mc_image src = make_image(W, H, 3), im;

    /* TranslateX +30.7 -> int 30: out(x) = in(x - 30), the first 30 columns black */
    im = clone(&src);
    int ok = mc_aug_apply_op(&im, MC_AUG_TRANSLATE_X, 30.7, &e) == MC_OK;
    for (int y = 0; ok && y < H; y++)
        for (int x = 0; ok && x < W; x++) {
            const uint8_t z[3] = {0, 0, 0};
            ok = !memcmp(px(&im, x, y), x < 30 ? z : px(&src, x - 30, y), 3);
        }
    CHECK(ok, "translate x +30");
    mc_image_free(&im);
    /* TranslateY -5.9 -> int -5: out(y) = in(y + 5), the last 5 rows black */
    im = clone(&src);
    ok = mc_aug_apply_op(&im, MC_AUG_TRANSLATE_Y, -5.9, &e) == MC_OK;
    for (int y = 0; ok && y < H; y++)
        for (int x = 0; ok && x < W; x++) {
            const uint8_t z[3] = {0, 0, 0};
            ok = !memcmp(px(&im, x, y), y >= H - 5 ? z : px(&src, x, y + 5), 3);
        }
    CHECK(ok, "translate y -5");
    mc_image_free(&im);

    /* Rotate by multiples of 90 degrees: Pillow's lossless transposes */
    im = clone(&src);
    ok = mc_aug_apply_op(&im, MC_AUG_ROTATE, 180.0, &e) == MC_OK;
    for (int y = 0; ok && y < H; y++)
        for (int x = 0; ok && x < W; x++) ok = !memcmp(px(&im, x, y), px(&src, W - 1 - x, H - 1 - y), 3);
    CHECK(ok, "rotate 180");
    mc_image_free(&im);
    im = clone(&src);
    CHECK(mc_aug_apply_op(&im, MC_AUG_ROTATE, 720.0, &e) == MC_OK && same(&im, &src), "rotate 720");
    mc_image_free(&im);
    {
        mc_image sq = make_image(9, 9, 5), r = clone(&sq);
        ok = mc_aug_apply_op(&r, MC_AUG_ROTATE, -270.0, &e) == MC_OK; /* = 90, counter-clockwise */
        for (int y = 0; ok && y < 9; y++)
            for (int x = 0; ok && x < 9; x++) ok = !memcmp(px(&r, y, 8 - x), px(&sq, x, y), 3);
        CHECK(ok, "rotate -270 = 90 ccw");
        mc_image_free(&r);
        /* four quarter turns by the general path (89.999... is not a fast path)
         * are not asserted; 90 then 270 is the identity */
        r = clone(&sq);
        ok = mc_aug_apply_op(&r, MC_AUG_ROTATE, 90.0, &e) == MC_OK &&
             mc_aug_apply_op(&r, MC_AUG_ROTATE, 270.0, &e) == MC_OK && same(&r, &sq);
        CHECK(ok, "rotate 90 + 270");
        mc_image_free(&r);
        mc_image_free(&sq);
    }
    /* A small rotation keeps the centre pixel and blackens a corner */
    im = clone(&src);
    ok = mc_aug_apply_op(&im, MC_AUG_ROTATE, 9.0, &e) == MC_OK;
    CHECK(ok && !memcmp(px(&im, W / 2, H / 2), px(&src, W / 2, H / 2), 3), "rotate 9: centre kept");
    CHECK(px(&im, 0, 0)[0] == 0 && px(&im, 0, 0)[1] == 0, "rotate 9: corner black");
    mc_image_free(&im);

    /* Shear with magnitude 0 is the identity (pure-scale path) */
    im = clone(&src);
    CHECK(mc_aug_apply_op(&im, MC_AUG_SHEAR_X, 0.0, &e) == MC_OK && same(&im, &src), "shear 0");
    mc_image_free(&im);
    /* ShearX 1.0: input x = x + y, sampled at pixel centres: (x + .5) + (y + .5) -> x + y + 1 */
    im = clone(&src);
    ok = mc_aug_apply_op(&im, MC_AUG_SHEAR_X, 1.0, &e) == MC_OK;
    for (int y = 0; ok && y < H; y++)
        for (int x = 0; ok && x < W; x++) {
            int xs = x + y + 1;
            const uint8_t z[3] = {0, 0, 0};
            ok = !memcmp(px(&im, x, y), xs < W ? px(&src, xs, y) : z, 3);
        }
    CHECK(ok, "shear x 1.0");
    mc_image_free(&im);

    /* Affine paths: a pure translation far away (double path) is all black;
     * the fixed-point path with an integer shift equals the scale path */
    im = clone(&src);
    double far[6] = {1, 0.5, 40000.0, 0, 1, 0};
    ok = mc_aug_affine_nearest(&im, far, &e) == MC_OK;
    for (size_t i = 0; ok && i < (size_t)W * H * 3; i++) ok = im.rgb[i] == 0;
    CHECK(ok, "affine far away: black");
    mc_image_free(&im);
    {
        mc_image a = clone(&src), b = clone(&src);
        double m1[6] = {1, 0, 3, 0, 1, -2};           /* scale path */
        double m2[6] = {1, 1e-12, 3, 0, 1, -2};       /* fixed-point path, same positions */
        ok = mc_aug_affine_nearest(&a, m1, &e) == MC_OK && mc_aug_affine_nearest(&b, m2, &e) == MC_OK &&
             same(&a, &b);
        CHECK(ok, "affine scale path = fixed path for a shift");
        CHECK(!memcmp(px(&a, 0, 5), px(&src, 3, 3), 3), "affine shift samples (x+3, y-2)");
        mc_image_free(&a);
        mc_image_free(&b);
    }
    mc_image_free(&src);
}

static void test_flip_erase(void) {
    mc_error e;
    mc_image src = make_image(13, 6, 11), im = clone(&src);
    CHECK(mc_aug_hflip(&im, &e) == MC_OK, "flip");
    int ok = 1;
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 13; x++) ok &= !memcmp(px(&im, x, y), px(&src, 12 - x, y), 3);
    CHECK(ok, "flip mirrors columns");
    CHECK(mc_aug_hflip(&im, &e) == MC_OK && same(&im, &src), "flip twice = identity");
    mc_image_free(&im);

    /* erase rows 2..5, columns 3..7 */
    im = clone(&src);
    ok = mc_aug_erase(&im, 2, 3, 4, 5, &e) == MC_OK;
    for (int y = 0; ok && y < 6; y++)
        for (int x = 0; ok && x < 13; x++) {
            int in = y >= 2 && y < 6 && x >= 3 && x < 8;
            const uint8_t z[3] = {0, 0, 0};
            ok = !memcmp(px(&im, x, y), in ? z : px(&src, x, y), 3);
        }
    CHECK(ok, "erase box");
    mc_image_free(&im);
    /* x == -1: nothing erased */
    im = clone(&src);
    CHECK(mc_aug_erase(&im, -1, 0, 6, 13, &e) == MC_OK && same(&im, &src), "erase -1: no-op");
    mc_image_free(&im);
    /* Python slices: y = -3, w = 2 -> columns 10..11; a box past the edge is clipped */
    im = clone(&src);
    ok = mc_aug_erase(&im, 4, -3, 100, 2, &e) == MC_OK;
    for (int y = 0; ok && y < 6; y++)
        for (int x = 0; ok && x < 13; x++) {
            int in = y >= 4 && (x == 10 || x == 11);
            const uint8_t z[3] = {0, 0, 0};
            ok = !memcmp(px(&im, x, y), in ? z : px(&src, x, y), 3);
        }
    CHECK(ok, "erase with a negative column and a long height");
    mc_image_free(&im);
    /* the whole image (what get_params returns when it gives up) */
    im = clone(&src);
    ok = mc_aug_erase(&im, 0, 0, 6, 13, &e) == MC_OK;
    for (size_t i = 0; ok && i < (size_t)13 * 6 * 3; i++) ok = im.rgb[i] == 0;
    CHECK(ok, "erase everything");
    mc_image_free(&im);
    mc_image_free(&src);

    /* A layout with flip and erasing, through parse + reapply */
    const char *cfg_txt = "{\"random_resized_crop\": {\"size\": 224}, \"random_horizontal_flip\": {\"p\": 0.5},"
                          " \"rand_augment\": {\"enable\": true, \"num_ops\": 1}, \"to_tensor\": {},"
                          " \"random_erase\": {\"p\": 0.25}, \"mixup\": {\"enable\": false}, \"to_rgb\": {}}";
    mc_json *cfg = NULL;
    mc_aug_layout lay;
    CHECK(mc_json_parse(cfg_txt, strlen(cfg_txt), &cfg, &e) == MC_OK, "config json");
    CHECK(mc_aug_layout_from_config(cfg, &lay, &e) == MC_OK && lay.random_resized_crop &&
              lay.random_horizontal_flip && lay.rand_augment && lay.rand_augment_num_ops == 1 &&
              lay.random_erase, "layout with flip and erase: %s", e.message);
    mc_json_free(cfg);
    const char *with = "[[2, 3, 20, 30], true, [[10, 7.0]], [1, 2, 3, 4]]";
    const char *without = "[[2, 3, 20, 30], false, [[10, 7.0]], null]";
    mc_json *j1 = NULL, *j2 = NULL;
    mc_aug_params p1, p2;
    CHECK(mc_json_parse(with, strlen(with), &j1, &e) == MC_OK && mc_aug_parse(j1, &lay, &p1, &e) == MC_OK,
          "parse with flip/erase: %s", e.message);
    CHECK(mc_json_parse(without, strlen(without), &j2, &e) == MC_OK && mc_aug_parse(j2, &lay, &p2, &e) == MC_OK,
          "parse without: %s", e.message);
    mc_json_free(j1);
    mc_json_free(j2);
    CHECK(p1.has_flip && p1.flip && p1.has_erase && p1.erase_x == 1 && p1.erase_w == 4 && p1.n_ops == 1 &&
              p2.has_flip && !p2.flip && !p2.has_erase, "parsed flip/erase values");
    mc_image big = make_image(50, 40, 9), o1, o2;
    CHECK(mc_aug_reapply(&big, &p1, 16, MC_INTERP_BICUBIC, &o1, &e) == MC_OK, "reapply 1: %s", e.message);
    CHECK(mc_aug_reapply(&big, &p2, 16, MC_INTERP_BICUBIC, &o2, &e) == MC_OK, "reapply 2: %s", e.message);
    if (o1.rgb && o2.rgb) {
        mc_aug_hflip(&o2, &e);
        mc_aug_erase(&o2, 1, 2, 3, 4, &e);
        CHECK(same(&o1, &o2), "flip + erase in the reference's order");
    }
    mc_image_free(&o1);
    mc_image_free(&o2);
    mc_image_free(&big);
}

/* ------------------------------------------------------------------------ */
/* Hostile input                                                             */
/* ------------------------------------------------------------------------ */

static void test_hostile(void) {
    mc_error e;
    const char *bad_entries[] = {
        "{}", "3", "[]", "[[1,2,3,4]]", "[[1,2,3,4],[[0,0.0],[0,0.0]],[]]",
        "[[1,2,3],[[0,0.0],[0,0.0]]]", "[[1,2,3,4,5],[[0,0.0],[0,0.0]]]",
        "[[-1,2,3,4],[[0,0.0],[0,0.0]]]", "[[1,2,0,4],[[0,0.0],[0,0.0]]]", "[[1,2,3,-4],[[0,0.0],[0,0.0]]]",
        "[[1.5,2,3,4],[[0,0.0],[0,0.0]]]", "[[1,2,3,1e300],[[0,0.0],[0,0.0]]]", "[[\"1\",2,3,4],[[0,0.0],[0,0.0]]]",
        "[[1,2,3,4],[[14,0.0],[0,0.0]]]", "[[1,2,3,4],[[-1,0.0],[0,0.0]]]", "[[1,2,3,4],[[2.5,0.0],[0,0.0]]]",
        "[[1,2,3,4],[[0,0.0]]]", "[[1,2,3,4],[[0,0.0],[0]]]", "[[1,2,3,4],[[0,0.0],[0,\"x\"]]]",
        "[[1,2,3,4],[[0,0.0],[5,1e300]]]", "[[1,2,3,4],[[0,0.0],[10,9.0]]]", "[[1,2,3,4],{\"a\":1}]",
        "[[1,2,3,4],[[0,0.0],null]]", "[[1,2,3,4],[[0,0.0],[0,0.0,1]]]", "[[1,2,3,4],[[1e20,0.0],[0,0.0]]]",
    };
    for (size_t i = 0; i < sizeof bad_entries / sizeof bad_entries[0]; i++) {
        mc_json *j = NULL;
        mc_aug_params p;
        mc_status st = mc_json_parse(bad_entries[i], strlen(bad_entries[i]), &j, &e);
        CHECK(st == MC_OK, "json %s", bad_entries[i]);
        if (st != MC_OK) continue;
        e.message[0] = 0;
        st = mc_aug_parse(j, NULL, &p, &e);
        CHECK(st == MC_ERR_FORMAT && e.message[0], "entry %s accepted (%d)", bad_entries[i], st);
        mc_json_free(j);
    }
    /* nulls are skipped transforms, as the reference reads them */
    {
        mc_json *j = NULL;
        mc_aug_params p;
        const char *t = "[null, null]";
        CHECK(mc_json_parse(t, strlen(t), &j, &e) == MC_OK && mc_aug_parse(j, NULL, &p, &e) == MC_OK &&
                  !p.has_crop && !p.has_randaug, "null entries");
        mc_json_free(j);
        /* longer RandAugment lists: the first num_ops are applied */
        t = "[[0,0,4,4], [[1,0.1],[2,0.2],[3,5.0]]]";
        CHECK(mc_json_parse(t, strlen(t), &j, &e) == MC_OK && mc_aug_parse(j, NULL, &p, &e) == MC_OK &&
                  p.n_ops == 2 && p.op[1] == 2, "first num_ops of a longer list");
        mc_json_free(j);
    }

    const char *bad_paug[] = {
        "", "[]", "{}", "{\"param_aug\": 3}", "{\"param_aug\": \"[[1,2\"}", "{\"param_aug\": \"{}\"}",
        "{\"param_aug\": [[[1,2,3,4],[[0,0.0],[99,0.0]]]]}", "{\"param_aug\": \"[[[1,2,3,4],[[0,0.0],[0,0.0]]], 5]\"}",
    };
    for (size_t i = 0; i < sizeof bad_paug / sizeof bad_paug[0]; i++) {
        mc_aug_params *p = (mc_aug_params *)1;
        size_t n = 7;
        e.message[0] = 0;
        mc_status st = mc_aug_parse_paug(bad_paug[i], strlen(bad_paug[i]), NULL, &p, &n, &e);
        CHECK(st != MC_OK && p == NULL && n == 0 && e.message[0], "paug %s accepted", bad_paug[i]);
    }
    {
        /* both spellings of param_aug: a list, and a string holding the list */
        const char *a = "{\"param_aug\": [[[1,2,3,4],[[0,0.0],[13,0.0]]]]}";
        const char *b = "{\"param_aug\": \"[[[1,2,3,4],[[0,0.0],[13,0.0]]]]\"}";
        mc_aug_params *pa = NULL, *pb = NULL;
        size_t na = 0, nb = 0;
        CHECK(mc_aug_parse_paug(a, strlen(a), NULL, &pa, &na, &e) == MC_OK && na == 1, "paug list");
        CHECK(mc_aug_parse_paug(b, strlen(b), NULL, &pb, &nb, &e) == MC_OK && nb == 1, "paug string");
        CHECK(pa && pb && !memcmp(pa, pb, sizeof *pa) && pa->crop_w == 4 && pa->op[1] == 13, "same params");
        free(pa);
        free(pb);
    }
    {
        mc_json *j = NULL;
        mc_aug_layout lay;
        const char *c1 = "{\"resize\": {\"size\": 256}}", *c2 = "{\"rand_augment\": {\"interpolation\": \"bilinear\"}}",
                   *c3 = "{\"random_resized_crop\": 5}", *c4 = "[1]";
        const char *cs[] = {c1, c2, c3, c4};
        for (int i = 0; i < 4; i++) {
            CHECK(mc_json_parse(cs[i], strlen(cs[i]), &j, &e) == MC_OK, "json");
            CHECK(mc_aug_layout_from_config(j, &lay, &e) != MC_OK, "config %s accepted", cs[i]);
            mc_json_free(j);
        }
    }

    /* reapply: boxes outside the image, bad sizes, bad params, empty images */
    mc_image img = make_image(40, 30, 2), out;
    mc_aug_params p;
    memset(&p, 0, sizeof p);
    p.has_crop = 1;
    const int boxes[][4] = {{0, 0, 31, 10}, {0, 0, 10, 41}, {25, 0, 6, 10}, {0, 35, 5, 6},
                            {-1, 0, 5, 5}, {0, 0, 0, 5}, {0, 0, 5, -5}, {2147483647, 0, 5, 5},
                            {0, 2147483000, 5, 2000}};
    for (size_t i = 0; i < sizeof boxes / sizeof boxes[0]; i++) {
        p.crop_top = boxes[i][0];
        p.crop_left = boxes[i][1];
        p.crop_h = boxes[i][2];
        p.crop_w = boxes[i][3];
        out.rgb = (uint8_t *)1;
        mc_status st = mc_aug_reapply(&img, &p, 32, MC_INTERP_BICUBIC, &out, &e);
        CHECK(st != MC_OK && out.rgb == NULL, "box %d,%d %dx%d accepted", boxes[i][0], boxes[i][1],
              boxes[i][3], boxes[i][2]);
    }
    p.crop_top = 0;
    p.crop_left = 0;
    p.crop_h = 30;
    p.crop_w = 40;
    const int sizes[] = {0, -5, MC_AUG_MAX_SIZE + 1, -2147483647 - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CHECK(mc_aug_reapply(&img, &p, sizes[i], MC_INTERP_BICUBIC, &out, &e) != MC_OK, "size %d accepted",
              sizes[i]);
    CHECK(mc_aug_reapply(&img, &p, 32, (mc_interp)7, &out, &e) != MC_OK, "bad interpolation accepted");
    p.has_randaug = 1;
    p.n_ops = 1;
    p.op[0] = 99;
    CHECK(mc_aug_reapply(&img, &p, 32, MC_INTERP_BICUBIC, &out, &e) != MC_OK && out.rgb == NULL, "op 99 accepted");
    p.op[0] = -1;
    CHECK(mc_aug_reapply(&img, &p, 32, MC_INTERP_BICUBIC, &out, &e) != MC_OK, "op -1 accepted");
    p.op[0] = MC_AUG_ROTATE;
    p.mag[0] = NAN;
    CHECK(mc_aug_reapply(&img, &p, 32, MC_INTERP_BICUBIC, &out, &e) != MC_OK, "NaN magnitude accepted");
    p.mag[0] = 1e300;
    CHECK(mc_aug_reapply(&img, &p, 32, MC_INTERP_BICUBIC, &out, &e) != MC_OK, "huge magnitude accepted");
    p.n_ops = MC_AUG_MAX_OPS + 1;
    CHECK(mc_aug_reapply(&img, &p, 32, MC_INTERP_BICUBIC, &out, &e) != MC_OK, "too many ops accepted");
    p.n_ops = 0;
    p.has_erase = 1;
    p.erase_x = 1LL << 62;
    CHECK(mc_aug_reapply(&img, &p, 32, MC_INTERP_BICUBIC, &out, &e) != MC_OK, "huge erase accepted");
    p.has_erase = 0;
    CHECK(mc_aug_reapply(&img, &p, 32, MC_INTERP_BICUBIC, &out, &e) == MC_OK && out.width == 32, "valid after all");
    mc_image_free(&out);
    mc_image empty = {0, 0, NULL};
    CHECK(mc_aug_reapply(&empty, &p, 32, MC_INTERP_BICUBIC, &out, &e) != MC_OK, "empty image accepted");
    CHECK(mc_aug_reapply(&img, NULL, 32, MC_INTERP_BICUBIC, &out, &e) != MC_OK, "NULL params accepted");
    CHECK(mc_aug_apply_op(&empty, 0, 0.0, &e) != MC_OK, "op on empty image");
    CHECK(mc_aug_hflip(&empty, &e) != MC_OK, "flip of empty image");
    /* no crop stored: the image keeps its size */
    memset(&p, 0, sizeof p);
    CHECK(mc_aug_reapply(&img, &p, 32, MC_INTERP_BICUBIC, &out, &e) == MC_OK && same(&out, &img), "no-op params");
    mc_image_free(&out);
    mc_image_free(&img);
    /* a 1x1 and a 2x1 image go through every op */
    for (int w = 1; w <= 2; w++) {
        mc_image tiny = make_image(w, 1, 4);
        int ok = 1;
        for (int op = 0; op < MC_AUG_OP_COUNT; op++)
            ok &= mc_aug_apply_op(&tiny, op, op == MC_AUG_POSTERIZE ? 4.0 : 0.5, &e) == MC_OK;
        CHECK(ok, "every op on a %dx1 image", w);
        mc_image_free(&tiny);
    }
}

/* ------------------------------------------------------------------------ */
/* Speed: decode + reapply at 256 per sample                                 */
/* ------------------------------------------------------------------------ */


/* Config files: Apple's DR config layout, the bare augmentation object, errors. */
static void test_layout_files(void) {
    static const struct { const char *text; int ok, flip, erase; } cases[] = {
        {"{\"reinforce\": {\"image_augmentation\": {\"random_resized_crop\": {\"size\": 224}, "
         "\"rand_augment\": {\"enable\": true, \"p\": 1.0}, \"to_tensor\": {\"enable\": true}}}}", 1, 0, 0},
        {"{\"random_resized_crop\": {\"size\": 224}, \"random_horizontal_flip\": {\"p\": 0.5}, "
         "\"rand_augment\": {\"p\": 1.0}, \"random_erase\": {\"p\": 0.25}}", 1, 1, 1},
        {"{\"reinforce\": {\"image_augmentation\": {\"mixup\": {\"alpha\": 1.0}}}}", 0, 0, 0},
        {"{\"reinforce\": ", 0, 0, 0},
    };
    char path[] = "/tmp/mc_aug_layout_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temporary file");
    if (fd < 0) return;
    close(fd);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        FILE *f = fopen(path, "w");
        if (!f) break;
        fputs(cases[i].text, f);
        fclose(f);
        mc_aug_layout l;
        mc_error e;
        mc_error_clear(&e);
        mc_status st = mc_aug_layout_from_file(path, &l, &e);
        if (cases[i].ok)
            CHECK(st == MC_OK && l.random_resized_crop && l.rand_augment && l.random_horizontal_flip == cases[i].flip &&
                      l.random_erase == cases[i].erase, "config %zu: %s", i, e.message);
        else
            CHECK(st != MC_OK && strstr(e.message, path), "config %zu refused naming the file: %s", i, e.message);
    }
    unlink(path);
    mc_error e;
    mc_aug_layout l;
    CHECK(mc_aug_layout_from_file("/nonexistent/dr.json", &l, &e) == MC_ERR_IO, "a missing config file");
}

int main(void) {
    test_fixture();
    test_layout_files();
    test_lut_ops();
    test_enhance_ops();
    test_geometry_ops();
    test_flip_erase();
    test_hostile();
    return test_summary("test_augment");
}
