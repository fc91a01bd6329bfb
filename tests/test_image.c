/*
 * test_image.c - image decoding and preprocessing: every NAME/PIPE tensor of
 * images/expected_pixels.safetensors byte for byte, PNG sample formats and
 * JPEG/PNG EXIF orientations built in memory, resampling edge cases,
 * ToTensor/Normalize numbers, and clear errors for bad files.
 */
#include "test.h"

#include "mobileclip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>
#include <zlib.h>

/* ---- fixture parity ---- */

static void test_fixture_pixels(void) {
    mc_checkpoint *ck = NULL;
    mc_error e;
    mc_status st = mc_checkpoint_open(fixture("images/expected_pixels.safetensors"), &ck, &e);
    CHECK(st == MC_OK, "open expected_pixels.safetensors: %s", e.message);
    if (st != MC_OK) return;
    size_t n = mc_checkpoint_count(ck);
    int equal = 0, exif_variants = 0;
    for (size_t i = 0; i < n; i++) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        char name[512];
        snprintf(name, sizeof name, "%s", t->name);
        char *slash = strrchr(name, '/');
        CHECK(slash != NULL, "tensor name without /PIPE: %s", t->name);
        if (!slash) continue;
        *slash = 0;
        const char *pipe = slash + 1;
        int apply_exif = 0;
        char *plus = strstr(name, "+exif");
        if (plus) {
            *plus = 0;
            apply_exif = 1;
            exif_variants++;
        }
        int size = atoi(pipe);
        mc_interp interp = strstr(pipe, "bicubic") ? MC_INTERP_BICUBIC : MC_INTERP_BILINEAR;
        CHECK((size == 224 || size == 256) && (strstr(pipe, "bilinear") || strstr(pipe, "bicubic")),
              "unknown pipeline %s", t->name);
        CHECK(t->dtype == MC_DTYPE_U8 && t->ndim == 3 && t->shape[0] == size && t->shape[1] == size &&
                  t->shape[2] == 3, "%s: unexpected dtype/shape", t->name);
        char rel[600];
        snprintf(rel, sizeof rel, "images/%s", name);
        mc_image img, res;
        st = mc_image_load(fixture(rel), apply_exif, &img, &e);
        CHECK(st == MC_OK, "%s: %s", t->name, e.message);
        if (st != MC_OK) continue;
        st = mc_image_resize_crop(&img, size, interp, MC_RESIZE_SHORTEST, &res, &e);
        CHECK(st == MC_OK, "%s: resize: %s", t->name, e.message);
        if (st == MC_OK && t->nbytes == (size_t)size * size * 3) {
            size_t diff = 0;
            const uint8_t *x = t->data;
            for (size_t j = 0; j < t->nbytes; j++) diff += x[j] != res.rgb[j];
            CHECK(diff == 0, "%s: %zu of %zu bytes differ", t->name, diff, t->nbytes);
            if (!diff) equal++;
        }
        mc_image_free(&res);
        mc_image_free(&img);
    }
    CHECK(n >= 45 && exif_variants >= 3, "only %zu tensors (%d +exif)", n, exif_variants);
    printf("pixel tensors equal: %d of %zu\n", equal, n);

    /* The whole pipeline agrees with the pixels: ((x / 255) - mean) / std in float32. */
    const mc_tensor_info *t = mc_checkpoint_find(ck, "chelsea.png/224_bicubic");
    CHECK(t != NULL, "chelsea.png/224_bicubic missing");
    if (t) {
        mc_preprocess_params p = mc_preprocess_default_params();
        const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
        const float sd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
        p.size = 224;
        p.interp = MC_INTERP_BICUBIC;
        memcpy(p.mean, mean, sizeof mean);
        memcpy(p.std, sd, sizeof sd);
        float *out = malloc(sizeof(float) * 3 * 224 * 224);
        st = mc_image_preprocess_file(fixture("images/chelsea.png"), &p, out, &e);
        CHECK(st == MC_OK, "preprocess_file: %s", e.message);
        size_t bad = 0;
        const uint8_t *x = t->data;
        for (int c = 0; c < 3 && st == MC_OK; c++)
            for (int i = 0; i < 224 * 224; i++) {
                float v = (float)x[i * 3 + c] / 255.0f;
                v = (v - mean[c]) / sd[c];
                bad += memcmp(&v, &out[c * 224 * 224 + i], 4) != 0;
            }
        CHECK(bad == 0, "preprocess_file: %zu values differ", bad);
        free(out);
    }

    /* Full-image resample (no window) then a manual crop gives the same pixels. */
    t = mc_checkpoint_find(ck, "chelsea.png/256_bilinear");
    CHECK(t != NULL, "chelsea.png/256_bilinear missing");
    mc_image img, big;
    if (t && mc_image_load(fixture("images/chelsea.png"), 1, &img, &e) == MC_OK) {
        /* 451 x 300: width int(256 * 451 / 300) = 384, crop left round(64.0) = 64. */
        st = mc_image_resample(&img, 384, 256, MC_INTERP_BILINEAR, &big, &e);
        CHECK(st == MC_OK && big.width == 384 && big.height == 256, "resample: %s", e.message);
        int ok = st == MC_OK;
        const uint8_t *x = t->data;
        for (int y = 0; ok && y < 256; y++)
            ok = !memcmp(big.rgb + ((size_t)y * 384 + 64) * 3, x + (size_t)y * 256 * 3, 256 * 3);
        CHECK(ok, "full resample + crop differs from the reference");
        mc_image_free(&big);
        mc_image_free(&img);
    }
    mc_checkpoint_close(ck);
}

/* ---- bad files ---- */

static void test_bad_files(void) {
    const char *names[] = {"images/truncated.jpg", "images/not_an_image.jpg"};
    for (int i = 0; i < 2; i++) {
        mc_image img;
        mc_error e;
        mc_status st = mc_image_load(fixture(names[i]), 1, &img, &e);
        CHECK(st == MC_ERR_IMAGE, "%s: status %d", names[i], st);
        CHECK(strstr(e.message, strrchr(names[i], '/') + 1) != NULL, "message lacks file name: %s",
              e.message);
        CHECK(img.rgb == NULL, "%s: image not cleared", names[i]);
        if (i == 0) CHECK(strstr(e.message, "truncated") != NULL, "wording: %s", e.message);
        float out[3 * 8 * 8];
        mc_preprocess_params p = mc_preprocess_default_params();
        p.size = 8;
        st = mc_image_preprocess_file(fixture(names[i]), &p, out, &e);
        CHECK(st == MC_ERR_IMAGE && strstr(e.message, strrchr(names[i], '/') + 1),
              "preprocess %s: %d %s", names[i], st, e.message);
    }

    /* In memory: empty, text, truncated PNG and progressive JPEG, missing file. */
    mc_image img;
    mc_error e;
    CHECK(mc_image_load_memory("", 0, 1, &img, &e) == MC_ERR_IMAGE, "empty buffer");
    CHECK(mc_image_load_memory("hello world, not an image", 25, 1, &img, &e) == MC_ERR_IMAGE,
          "text buffer");
    const char *trunc[] = {"images/chelsea.png", "images/chelsea_progressive.jpg",
                           "images/chelsea_cmyk.jpg"};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(fixture(trunc[i]), "rb");
        CHECK(f != NULL, "missing fixture %s", trunc[i]);
        if (!f) continue;
        uint8_t *buf = malloc(1 << 20);
        size_t n = fread(buf, 1, 1 << 20, f);
        fclose(f);
        size_t cuts[] = {5, 40, 3000, n / 2, n - 40};
        for (int k = 0; k < 5; k++) {
            mc_status st = mc_image_load_memory(buf, cuts[k], 1, &img, &e);
            CHECK(st == MC_ERR_IMAGE, "%s cut at %zu: status %d", trunc[i], cuts[k], st);
            if (st == MC_OK) mc_image_free(&img);
        }
        free(buf);
    }
    mc_status st = mc_image_load("/nonexistent/dir/x.png", 1, &img, &e);
    CHECK(st == MC_ERR_IO && strstr(e.message, "/nonexistent/dir/x.png"), "missing file: %s",
          e.message);
}

/* ---- in-memory encoders ---- */

typedef struct membuf {
    uint8_t *data;
    size_t len, cap;
} membuf;

static void mb_write(png_structp png, png_bytep d, size_t n) {
    membuf *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
}
static void mb_flush(png_structp png) { (void)png; }

/* Writes a PNG from packed raw rows (rowbytes each). */
static membuf png_encode(int w, int h, int bits, int ct, int interlace, const uint8_t *raw,
                         size_t rowbytes, const png_color *pal, int npal, const uint8_t *trns,
                         int ntrns, const uint8_t *exif, size_t nexif, png_text *texts,
                         int ntexts) {
    membuf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(b.data);
        b.data = NULL;
        b.len = 0;
        return b;
    }
    png_set_write_fn(png, &b, mb_write, mb_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bits, ct,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    if (exif) png_set_eXIf_1(png, info, (png_uint_32)nexif, (png_bytep)exif);
    if (texts) png_set_text(png, info, texts, ntexts);
    png_write_info(png, info);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)raw + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, info);
    free(rows);
    png_destroy_write_struct(&png, &info);
    return b;
}

static membuf jpeg_encode_rgb(int w, int h, const uint8_t *rgb, const uint8_t *app1, size_t napp1) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &outlen);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    if (app1) jpeg_write_marker(&c, JPEG_APP0 + 1, app1, (unsigned)napp1);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)(rgb + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    membuf b = {malloc(outlen), outlen, outlen};
    memcpy(b.data, out, outlen);
    free(out);
    return b;
}

/* TIFF block with IFD0 holding an Orientation SHORT (and one other tag). */
static size_t make_exif(uint8_t *o, int big_endian, int orientation, int with_prefix) {
    size_t k = 0;
    if (with_prefix) { memcpy(o, "Exif\0\0", 6); k = 6; }
    uint8_t *t = o + k;
    const uint8_t le_hdr[8] = {'I', 'I', 42, 0, 8, 0, 0, 0};
    const uint8_t be_hdr[8] = {'M', 'M', 0, 42, 0, 0, 0, 8};
    memcpy(t, big_endian ? be_hdr : le_hdr, 8);
    uint8_t *p = t + 8;
#define P16(v) do { if (big_endian) { p[0] = (uint8_t)((v) >> 8); p[1] = (uint8_t)(v); } \
                    else { p[0] = (uint8_t)(v); p[1] = (uint8_t)((v) >> 8); } p += 2; } while (0)
#define P32(v) do { if (big_endian) { P16((v) >> 16); P16((v) & 0xFFFF); } \
                    else { P16((v) & 0xFFFF); P16((v) >> 16); } } while (0)
    P16(2);
    P16(0x011A); P16(5); P32(1); P32(0);   /* XResolution (offset unused here) */
    P16(0x0112); P16(3); P32(1); P16(orientation); P16(0);
    P32(0);
#undef P16
#undef P32
    return k + (size_t)(p - t);
}

/* ---- PNG sample formats ---- */

static void expect_rgb(const mc_image *img, int w, int h, const uint8_t *want, const char *what) {
    int ok = img->width == w && img->height == h &&
             !memcmp(img->rgb, want, (size_t)w * h * 3);
    CHECK(ok, "%s: wrong pixels (%d x %d)", what, img->width, img->height);
}

static void test_png_formats(void) {
    enum { W = 13, H = 3 };
    uint8_t raw[H * W * 8], want[H * W * 3];
    mc_image img;
    mc_error e;
    /* Gray 1/2/4/8 bit: samples scaled to 0..255. */
    const int gbits[] = {1, 2, 4, 8};
    for (int gi = 0; gi < 4; gi++) {
        int b = gbits[gi], maxv = (1 << b) - 1, scale = 255 / maxv;
        size_t rb = ((size_t)W * b + 7) / 8;
        memset(raw, 0, sizeof raw);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int v = (x * 7 + y * 3) & maxv, bit = x * b;
                raw[y * rb + bit / 8] |= (uint8_t)(v << (8 - b - bit % 8));
                for (int c = 0; c < 3; c++) want[(y * W + x) * 3 + c] = (uint8_t)(v * scale);
            }
        membuf m = png_encode(W, H, b, PNG_COLOR_TYPE_GRAY, 0, raw, rb, NULL, 0, NULL, 0, NULL, 0,
                              NULL, 0);
        CHECK(mc_image_load_memory(m.data, m.len, 1, &img, &e) == MC_OK, "gray%d: %s", b, e.message);
        char what[32];
        snprintf(what, sizeof what, "gray %d-bit", b);
        expect_rgb(&img, W, H, want, what);
        mc_image_free(&img);
        free(m.data);
    }
    /* Gray 16 bit: Pillow's I mode, clipped to 0..255 by convert("RGB"). */
    {
        const unsigned vals[] = {0, 1, 200, 254, 255, 256, 1000, 65535};
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                unsigned v = vals[(x + y) % 8];
                raw[(y * W + x) * 2] = (uint8_t)(v >> 8);
                raw[(y * W + x) * 2 + 1] = (uint8_t)v;
                for (int c = 0; c < 3; c++) want[(y * W + x) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
            }
        membuf m = png_encode(W, H, 16, PNG_COLOR_TYPE_GRAY, 0, raw, W * 2, NULL, 0, NULL, 0, NULL, 0,
                              NULL, 0);
        CHECK(mc_image_load_memory(m.data, m.len, 1, &img, &e) == MC_OK, "gray16: %s", e.message);
        expect_rgb(&img, W, H, want, "gray 16-bit");
        mc_image_free(&img);
        free(m.data);
    }
    /* Gray+alpha 8/16, RGB 16, RGBA 8/16: alpha dropped, 16-bit keeps the high byte. */
    {
        struct { int ct, bits, ch; const char *what; } f[] = {
            {PNG_COLOR_TYPE_GRAY_ALPHA, 8, 2, "LA 8"},  {PNG_COLOR_TYPE_GRAY_ALPHA, 16, 2, "LA 16"},
            {PNG_COLOR_TYPE_RGB, 16, 3, "RGB 16"},      {PNG_COLOR_TYPE_RGB_ALPHA, 8, 4, "RGBA 8"},
            {PNG_COLOR_TYPE_RGB_ALPHA, 16, 4, "RGBA 16"}, {PNG_COLOR_TYPE_RGB, 8, 3, "RGB 8"},
        };
        for (int fi = 0; fi < 6; fi++) {
            int bs = f[fi].bits / 8, ch = f[fi].ch;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int c = 0; c < ch; c++)
                        for (int k = 0; k < bs; k++)
                            raw[((y * W + x) * ch + c) * bs + k] =
                                (uint8_t)(k == 0 ? x * 19 + y * 50 + c * 70 : 255 - x);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int c = 0; c < 3; c++) {
                        int src = ch <= 2 ? 0 : c;
                        want[(y * W + x) * 3 + c] = raw[((y * W + x) * ch + src) * bs];
                    }
            for (int il = 0; il < 2; il++) {
                membuf m = png_encode(W, H, f[fi].bits, f[fi].ct, il, raw, (size_t)W * ch * bs, NULL, 0,
                                      NULL, 0, NULL, 0, NULL, 0);
                CHECK(mc_image_load_memory(m.data, m.len, 1, &img, &e) == MC_OK, "%s: %s",
                      f[fi].what, e.message);
                expect_rgb(&img, W, H, want, f[fi].what);
                mc_image_free(&img);
                free(m.data);
            }
        }
    }
    /* Palette 1/2/4/8 bit with tRNS: palette lookup, transparency ignored. */
    {
        png_color pal[256];
        uint8_t trns[256];
        for (int i = 0; i < 256; i++) {
            pal[i].red = (uint8_t)(i * 37 + 1);
            pal[i].green = (uint8_t)(i * 91 + 2);
            pal[i].blue = (uint8_t)(255 - i);
            trns[i] = (uint8_t)(i * 11);
        }
        const int pbits[] = {1, 2, 4, 8};
        for (int pi = 0; pi < 4; pi++) {
            int b = pbits[pi], n = 1 << b;
            size_t rb = ((size_t)W * b + 7) / 8;
            memset(raw, 0, sizeof raw);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int v = (x * 5 + y) % n, bit = x * b;
                    raw[y * rb + bit / 8] |= (uint8_t)(v << (8 - b - bit % 8));
                    want[(y * W + x) * 3 + 0] = pal[v].red;
                    want[(y * W + x) * 3 + 1] = pal[v].green;
                    want[(y * W + x) * 3 + 2] = pal[v].blue;
                }
            membuf m = png_encode(W, H, b, PNG_COLOR_TYPE_PALETTE, pi & 1, raw, rb, pal, n, trns,
                                  n > 4 ? 4 : n, NULL, 0, NULL, 0);
            CHECK(mc_image_load_memory(m.data, m.len, 1, &img, &e) == MC_OK, "P%d: %s", b, e.message);
            char what[32];
            snprintf(what, sizeof what, "palette %d-bit", b);
            expect_rgb(&img, W, H, want, what);
            mc_image_free(&img);
            free(m.data);
        }
    }
}

/* ---- EXIF orientation ---- */

/* A 3 x 2 image of pixels a b c / d e f and each orientation's expected result
 * (ImageOps.exif_transpose). */
static const char *const orient_want[9] = {
    NULL, "abc" "def", "cba" "fed", "fed" "cba", "def" "abc",
    "ad" "be" "cf", "da" "eb" "fc", "fc" "eb" "da", "cf" "be" "ad",
};

static void letter_rgb(char l, uint8_t *o) {
    o[0] = (uint8_t)(l * 3);
    o[1] = (uint8_t)(l * 5);
    o[2] = (uint8_t)(l * 7);
}

static void test_exif_png(void) {
    uint8_t raw[2 * 3 * 3];
    const char *src = "abcdef";
    for (int i = 0; i < 6; i++) letter_rgb(src[i], raw + i * 3);
    for (int be = 0; be < 2; be++) {
        for (int o = 1; o <= 8; o++) {
            uint8_t ex[128];
            size_t nex = make_exif(ex, be, o, 0);
            membuf m = png_encode(3, 2, 8, PNG_COLOR_TYPE_RGB, 0, raw, 9, NULL, 0, NULL, 0, ex, nex,
                                  NULL, 0);
            mc_image img;
            mc_error e;
            CHECK(mc_image_load_memory(m.data, m.len, 1, &img, &e) == MC_OK, "exif png: %s", e.message);
            int w = o >= 5 ? 2 : 3, h = o >= 5 ? 3 : 2;
            uint8_t want[18];
            for (int i = 0; i < 6; i++) letter_rgb(orient_want[o][i], want + i * 3);
            char what[48];
            snprintf(what, sizeof what, "PNG eXIf orientation %d (%s)", o, be ? "MM" : "II");
            expect_rgb(&img, w, h, want, what);
            mc_image_free(&img);
            /* apply_exif = 0 keeps the stored pixels. */
            CHECK(mc_image_load_memory(m.data, m.len, 0, &img, &e) == MC_OK, "no exif: %s", e.message);
            expect_rgb(&img, 3, 2, raw, "PNG with apply_exif 0");
            mc_image_free(&img);
            free(m.data);
        }
    }
    /* PNG text fallbacks: ImageMagick's raw EXIF profile, and XMP. */
    uint8_t ex[128];
    size_t nex = make_exif(ex, 1, 6, 1);
    char rawprof[512];
    int k = snprintf(rawprof, sizeof rawprof, "\nexif\n%8zu\n", nex);
    for (size_t i = 0; i < nex; i++)
        k += snprintf(rawprof + k, sizeof rawprof - (size_t)k, "%02x%s", ex[i], i % 36 == 35 ? "\n" : "");
    char xmp[] = "<x:xmpmeta><rdf:Description tiff:Orientation=\"8\"/></x:xmpmeta>";
    char xmp2[] = "<x:xmpmeta><tiff:Orientation>3</tiff:Orientation></x:xmpmeta>";
    png_text t[3];
    memset(t, 0, sizeof t);
    t[0].compression = PNG_TEXT_COMPRESSION_zTXt;
    t[0].key = "Raw profile type exif";
    t[0].text = rawprof;
    t[0].text_length = strlen(rawprof);
    t[1].compression = PNG_ITXT_COMPRESSION_NONE;
    t[1].key = "XML:com.adobe.xmp";
    t[1].text = xmp;
    t[1].itxt_length = strlen(xmp);
    t[2] = t[1];
    t[2].text = xmp2;
    t[2].itxt_length = strlen(xmp2);
    struct { png_text *t; int n; int want; const char *what; } cases[] = {
        {&t[0], 1, 6, "raw profile"}, {&t[1], 1, 8, "XMP attribute"}, {&t[2], 1, 3, "XMP element"},
        {&t[0], 2, 6, "raw profile before XMP"},
    };
    for (int c = 0; c < 4; c++) {
        membuf m = png_encode(3, 2, 8, PNG_COLOR_TYPE_RGB, 0, raw, 9, NULL, 0, NULL, 0, NULL, 0,
                              cases[c].t, cases[c].n);
        mc_image img;
        mc_error e;
        CHECK(mc_image_load_memory(m.data, m.len, 1, &img, &e) == MC_OK, "%s: %s", cases[c].what,
              e.message);
        int o = cases[c].want, w = o >= 5 ? 2 : 3, h = o >= 5 ? 3 : 2;
        uint8_t want[18];
        for (int i = 0; i < 6; i++) letter_rgb(orient_want[o][i], want + i * 3);
        expect_rgb(&img, w, h, want, cases[c].what);
        mc_image_free(&img);
        free(m.data);
    }
}

static void test_exif_jpeg(void) {
    enum { W = 24, H = 16 };
    uint8_t rgb[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            rgb[(y * W + x) * 3 + 0] = (uint8_t)(x * 10);
            rgb[(y * W + x) * 3 + 1] = (uint8_t)(y * 15);
            rgb[(y * W + x) * 3 + 2] = (uint8_t)((x * y) & 255);
        }
    for (int o = 1; o <= 8; o++) {
        uint8_t ex[128];
        size_t nex = make_exif(ex, o & 1, o, 1);
        membuf m = jpeg_encode_rgb(W, H, rgb, ex, nex);
        mc_image plain, rot;
        mc_error e;
        CHECK(mc_image_load_memory(m.data, m.len, 0, &plain, &e) == MC_OK, "jpeg: %s", e.message);
        CHECK(mc_image_load_memory(m.data, m.len, 1, &rot, &e) == MC_OK, "jpeg exif: %s", e.message);
        int w = o >= 5 ? H : W, h = o >= 5 ? W : H;
        int ok = rot.width == w && rot.height == h && plain.width == W && plain.height == H;
        /* Check the corner pixels land where the orientation says (a, c, d of the letters). */
        for (int r = 0; ok && r < h; r++)
            for (int c = 0; c < w; c++) {
                int y, x;   /* source pixel of output (r, c) */
                switch (o) {
                case 1: y = r; x = c; break;
                case 2: y = r; x = W - 1 - c; break;
                case 3: y = H - 1 - r; x = W - 1 - c; break;
                case 4: y = H - 1 - r; x = c; break;
                case 5: y = c; x = r; break;
                case 6: y = H - 1 - c; x = r; break;
                case 7: y = H - 1 - c; x = W - 1 - r; break;
                default: y = c; x = W - 1 - r; break;
                }
                if (memcmp(rot.rgb + ((size_t)r * w + c) * 3, plain.rgb + ((size_t)y * W + x) * 3, 3))
                    ok = 0;
            }
        CHECK(ok, "JPEG APP1 orientation %d", o);
        mc_image_free(&plain);
        mc_image_free(&rot);
        free(m.data);
    }
}

static void test_webp(void) {
    enum { W = 17, H = 9 };
    uint8_t rgb[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 13 + (i >> 3));
    uint8_t *enc = NULL;
    size_t n = WebPEncodeLosslessRGB(rgb, W, H, W * 3, &enc);
    CHECK(n > 0, "WebP encoder");
    if (!n) return;
    mc_image img;
    mc_error e;
    CHECK(mc_image_load_memory(enc, n, 1, &img, &e) == MC_OK, "webp: %s", e.message);
    expect_rgb(&img, W, H, rgb, "lossless WebP");
    mc_image_free(&img);
    CHECK(mc_image_load_memory(enc, n / 2, 1, &img, &e) == MC_ERR_IMAGE, "truncated WebP");
    WebPFree(enc);
}

/* ---- resampling ---- */

static void fill_const(mc_image *img, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    img->width = w;
    img->height = h;
    img->rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h; i++) {
        img->rgb[i * 3] = r;
        img->rgb[i * 3 + 1] = g;
        img->rgb[i * 3 + 2] = b;
    }
}

static void test_resize_edges(void) {
    const int sizes[][2] = {{1, 1}, {40, 900}, {900, 40}, {3, 5}, {7, 1}, {257, 256}, {256, 256}};
    for (int si = 0; si < 7; si++) {
        for (int interp = 0; interp < 2; interp++) {
            mc_image img, out;
            mc_error e;
            fill_const(&img, sizes[si][0], sizes[si][1], 12, 200, 255);
            for (int mode = 0; mode < 2; mode++) {
                mc_status st = mc_image_resize_crop(&img, 32, (mc_interp)interp, (mc_resize_mode)mode,
                                                    &out, &e);
                CHECK(st == MC_OK && out.width == 32 && out.height == 32, "%dx%d: %s", sizes[si][0],
                      sizes[si][1], e.message);
                int ok = 1;
                for (int i = 0; st == MC_OK && i < 32 * 32; i++)
                    if (out.rgb[i * 3] != 12 || out.rgb[i * 3 + 1] != 200 || out.rgb[i * 3 + 2] != 255)
                        ok = 0;
                CHECK(ok, "constant %dx%d interp %d mode %d not constant (or padded)", sizes[si][0],
                      sizes[si][1], interp, mode);
                mc_image_free(&out);
            }
            mc_image_free(&img);
        }
    }
    /* Same size: an exact copy; centre crop of a larger square-side image picks the middle. */
    {
        mc_image img, out;
        mc_error e;
        fill_const(&img, 6, 4, 0, 0, 0);
        for (int i = 0; i < 24 * 3; i++) img.rgb[i] = (uint8_t)(i * 7);
        CHECK(mc_image_resample(&img, 6, 4, MC_INTERP_BICUBIC, &out, &e) == MC_OK &&
                  !memcmp(out.rgb, img.rgb, 72), "identity resample");
        mc_image_free(&out);
        /* 6x4 to 4: width becomes int(4 * 6 / 4) = 6, no resampling; crop left = 1. */
        CHECK(mc_image_resize_crop(&img, 4, MC_INTERP_BILINEAR, MC_RESIZE_SHORTEST, &out, &e) == MC_OK,
              "crop: %s", e.message);
        int ok = out.width == 4 && out.height == 4;
        for (int y = 0; ok && y < 4; y++) ok = !memcmp(out.rgb + y * 12, img.rgb + (y * 6 + 1) * 3, 12);
        CHECK(ok, "centre crop of 6x4 to 4");
        mc_image_free(&out);
        /* 5x4 to 4 (round(0.5) = 0): crop left 0; 7x4: round(1.5) = 2. */
        mc_image_free(&img);
        const int widths[] = {5, 7}, lefts[] = {0, 2};
        for (int k = 0; k < 2; k++) {
            fill_const(&img, widths[k], 4, 0, 0, 0);
            for (int i = 0; i < widths[k] * 4 * 3; i++) img.rgb[i] = (uint8_t)(i * 3);
            CHECK(mc_image_resize_crop(&img, 4, MC_INTERP_BILINEAR, MC_RESIZE_SHORTEST, &out, &e) ==
                      MC_OK, "crop: %s", e.message);
            ok = 1;
            for (int y = 0; y < 4; y++)
                ok &= !memcmp(out.rgb + y * 12, img.rgb + (y * widths[k] + lefts[k]) * 3, 12);
            CHECK(ok, "centre crop of %dx4 uses left %d (ties to even)", widths[k], lefts[k]);
            mc_image_free(&out);
            mc_image_free(&img);
        }
        mc_image empty = {0, 0, NULL};
        CHECK(mc_image_resize_crop(&empty, 4, MC_INTERP_BILINEAR, MC_RESIZE_SHORTEST, &out, &e) ==
                  MC_ERR_INVALID_ARG, "empty input");
        fill_const(&img, 2, 2, 1, 2, 3);
        CHECK(mc_image_resize_crop(&img, 0, MC_INTERP_BILINEAR, MC_RESIZE_SHORTEST, &out, &e) ==
                  MC_ERR_INVALID_ARG, "size 0");
        mc_image_free(&img);
    }
}

/* ---- ToTensor / Normalize ---- */

static void test_to_tensor(void) {
    mc_image img;
    fill_const(&img, 256, 1, 0, 0, 0);
    for (int i = 0; i < 256; i++) {
        img.rgb[i * 3] = (uint8_t)i;
        img.rgb[i * 3 + 1] = (uint8_t)(255 - i);
        img.rgb[i * 3 + 2] = (uint8_t)(i ^ 0x55);
    }
    float *out = malloc(sizeof(float) * 3 * 256);
    const float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
    mc_image_to_tensor(&img, zero, one, out);
    int ok = 1;
    for (int i = 0; i < 256; i++) ok &= out[i] == (float)((double)i / 255.0);
    CHECK(ok, "x / 255 in float32");
    CHECK(out[0] == 0.0f && out[255] == 1.0f && out[256] == 1.0f && out[128] == 0.501960813999176f,
          "known values %.9g %.9g", out[128], out[255]);
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    const float sd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    mc_image_to_tensor(&img, mean, sd, out);
    /* 255 in channel 0: (1 - 0.48145466) / 0.26862954 = 1.93033... */
    CHECK(fabsf(out[255] - 1.9303361f) < 1e-6f, "normalised 255: %.9g", out[255]);
    CHECK(fabsf(out[0] + 1.7922626f) < 1e-6f, "normalised 0: %.9g", out[0]);
    CHECK(fabsf(out[256 + 255] + 1.7520971f) < 1e-6f, "channel 1, value 0: %.9g", out[256 + 255]);
    free(out);
    mc_image_free(&img);
}

/* A PNG whose header claims 100000 x 100000 pixels: refused before allocating. */
static void test_bomb(void) {
    uint8_t png[8 + 25 + 12];
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    const uint8_t ihdr[25] = {0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0,
                              8, 2, 0, 0, 0, 0, 0, 0, 0};
    memcpy(png + 8, ihdr, 25);
    uLong crc = crc32(0, png + 12, 17);
    png[29] = (uint8_t)(crc >> 24);
    png[30] = (uint8_t)(crc >> 16);
    png[31] = (uint8_t)(crc >> 8);
    png[32] = (uint8_t)crc;
    memcpy(png + 33, "\0\0\0\0IDAT", 8);   /* an empty IDAT ends the header */
    crc = crc32(0, png + 37, 4);
    png[41] = (uint8_t)(crc >> 24);
    png[42] = (uint8_t)(crc >> 16);
    png[43] = (uint8_t)(crc >> 8);
    png[44] = (uint8_t)crc;
    mc_image img;
    mc_error e;
    mc_status st = mc_image_load_memory(png, sizeof png, 1, &img, &e);
    CHECK(st == MC_ERR_IMAGE && strstr(e.message, "limit"), "bomb: %d %s", st, e.message);
}

int main(void) {
    test_fixture_pixels();
    test_bad_files();
    test_png_formats();
    test_exif_png();
    test_exif_jpeg();
    test_webp();
    test_resize_edges();
    test_to_tensor();
    test_bomb();
    mc_preprocess_params p = mc_preprocess_default_params();
    CHECK(p.size == 256 && p.interp == MC_INTERP_BILINEAR && p.apply_exif == 1 && p.std[2] == 1.0f &&
              p.resize_mode == MC_RESIZE_SHORTEST, "default params");
    return test_summary("test_image");
}
