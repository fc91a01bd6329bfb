/*
 * io/image.c - image decoding into 8-bit RGB as Pillow 9.4's
 * Image.open(f).convert("RGB") produces it: JPEG (libjpeg, Pillow's decoder
 * settings), PNG (libpng for the raw samples, Pillow's unpacking and mode
 * conversions), WebP (libwebp's animation decoder, first frame), and the
 * EXIF orientation (ImageOps.exif_transpose) read from JPEG APP1, PNG eXIf
 * and WebP EXIF.  Also the preprocessing parameter defaults.
 *
 * Decoders never print: libjpeg and libpng get error handlers that jump back
 * with the message, and warnings are dropped.
 */
#include "io/image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/demux.h>

/* Pillow refuses images above 2 * Image.MAX_IMAGE_PIXELS (DecompressionBombError).
 * Not static: the fuzz target lowers it to keep allocations small. */
size_t mc_image_max_pixels = 2 * (size_t)89478485;
/* A lower limit for the decode running in this thread (mc_image_load_memory_max), 0: none. */
static _Thread_local size_t tl_max_pixels;
static _Thread_local int tl_over_limit;   /* set when a limit refused an image */

mc_preprocess_params mc_preprocess_default_params(void) {
    mc_preprocess_params p;
    memset(&p, 0, sizeof p);
    p.size = 256;
    p.interp = MC_INTERP_BILINEAR;
    p.resize_mode = MC_RESIZE_SHORTEST;
    for (int c = 0; c < 3; c++) {
        p.mean[c] = 0.0f;
        p.std[c] = 1.0f;
    }
    p.apply_exif = 1;
    return p;
}

void mc_image_free(mc_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

static mc_status img_check_size(const char *fmt, long w, long h, mc_error *err) {
    if (w <= 0 || h <= 0)
        return mc_fail(err, MC_ERR_IMAGE, "%s image has an empty size %ld x %ld", fmt, w, h);
    size_t limit = tl_max_pixels && tl_max_pixels < mc_image_max_pixels ? tl_max_pixels : mc_image_max_pixels;
    if ((size_t)w * (size_t)h > limit) {
        tl_over_limit = 1;
        return mc_fail(err, MC_ERR_IMAGE,
                       "%s image of %ld x %ld pixels exceeds the limit of %zu pixels "
                       "(decompression bomb?)", fmt, w, h, limit);
    }
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* EXIF orientation                                                          */
/* ------------------------------------------------------------------------ */

/* Reads tag 0x0112 from IFD0 of a TIFF-structured EXIF block (optionally
 * behind "Exif\0\0").  Returns -1 when the tag is absent or the block
 * unreadable, 0 when the tag is there but not a single number. */
static int exif_orientation(const uint8_t *d, size_t n) {
    if (n >= 6 && !memcmp(d, "Exif\0\0", 6)) { d += 6; n -= 6; }
    if (n < 8) return -1;
    int le;
    if (d[0] == 'I' && d[1] == 'I' && d[2] == 42 && d[3] == 0) le = 1;
    else if (d[0] == 'M' && d[1] == 'M' && d[2] == 0 && d[3] == 42) le = 0;
    else return -1;
#define EX_U16(p) (le ? (uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 : (uint32_t)(p)[1] | (uint32_t)(p)[0] << 8)
#define EX_U32(p) (le ? EX_U16(p) | EX_U16((p) + 2) << 16 : EX_U16((p) + 2) | EX_U16(p) << 16)
    uint32_t off = EX_U32(d + 4);
    if (off > n || n - off < 2) return -1;
    uint32_t count = EX_U16(d + off);
    const uint8_t *e = d + off + 2;
    size_t room = n - off - 2;
    for (uint32_t i = 0; i < count && room >= 12; i++, e += 12, room -= 12) {
        if (EX_U16(e) != 0x0112) continue;
        uint32_t type = EX_U16(e + 2), cnt = EX_U32(e + 4);
        if (cnt != 1) return 0;
        switch (type) {
        case 1: case 6: return e[8];               /* BYTE, SBYTE */
        case 3: case 8: return (int)EX_U16(e + 8);  /* SHORT, SSHORT */
        case 4: case 9: {                          /* LONG, SLONG */
            uint32_t v = EX_U32(e + 8);
            return v <= 8 ? (int)v : 0;
        }
        default: return 0;
        }
    }
#undef EX_U32
#undef EX_U16
    return -1;
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* PNG "Raw profile type exif" text (ImageMagick): lines 4.. hold the EXIF
 * block in hex.  Returns the orientation as exif_orientation does. */
static int raw_profile_orientation(const char *text, size_t len) {
    size_t i = 0;
    for (int lines = 0; lines < 3 && i < len; i++)
        if (text[i] == '\n') lines++;
    uint8_t *buf = malloc(len / 2 + 1);
    if (!buf) return -1;
    size_t n = 0;
    int hi = -1, ok = 1;
    for (; i < len; i++) {
        int c = (unsigned char)text[i];
        if (c == '\n') continue;   /* the lines are joined */
        if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
            if (hi >= 0) { ok = 0; break; }
            continue;
        }
        int v = hex_digit(c);
        if (v < 0) { ok = 0; break; }
        if (hi < 0) hi = v;
        else { buf[n++] = (uint8_t)(hi << 4 | v); hi = -1; }
    }
    int o = ok && hi < 0 ? exif_orientation(buf, n) : -1;
    free(buf);
    return o;
}

/* Pillow falls back on 'tiff:Orientation="N"' or '>N' in PNG XMP text. */
static int xmp_orientation(const char *text, size_t len) {
    static const char key[] = "tiff:Orientation";
    const size_t kl = sizeof key - 1;
    for (size_t i = 0; i + kl < len; i++) {
        if (memcmp(text + i, key, kl)) continue;
        size_t j = i + kl;
        if (text[j] == '=' && j + 2 < len && text[j + 1] == '"' && text[j + 2] >= '0' &&
            text[j + 2] <= '9')
            return text[j + 2] - '0';
        if (text[j] == '>' && j + 1 < len && text[j + 1] >= '0' && text[j + 1] <= '9')
            return text[j + 1] - '0';
    }
    return -1;
}

/* ImageOps.exif_transpose: 2 flip left-right, 3 rotate 180, 4 flip top-bottom,
 * 5 transpose, 6 rotate 270 (clockwise), 7 transverse, 8 rotate 90. */
static mc_status img_apply_orientation(mc_image *img, int orient, mc_error *err) {
    if (orient < 2 || orient > 8) return MC_OK;
    const int w = img->width, h = img->height;
    const int swap = orient >= 5;
    const int ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *o = mc_malloc_array((size_t)w * (size_t)h, 3);
    if (!o) return mc_fail(err, MC_ERR_NOMEM, "out of memory rotating a %d x %d image", w, h);
    for (int r = 0; r < oh; r++) {
        for (int c = 0; c < ow; c++) {
            int y, x;
            switch (orient) {
            case 2: y = r; x = w - 1 - c; break;
            case 3: y = h - 1 - r; x = w - 1 - c; break;
            case 4: y = h - 1 - r; x = c; break;
            case 5: y = c; x = r; break;
            case 6: y = h - 1 - c; x = r; break;
            case 7: y = h - 1 - c; x = w - 1 - r; break;
            default: y = c; x = w - 1 - r; break;   /* 8 */
            }
            memcpy(o + ((size_t)r * ow + c) * 3, img->rgb + ((size_t)y * w + x) * 3, 3);
        }
    }
    free(img->rgb);
    img->rgb = o;
    img->width = ow;
    img->height = oh;
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct jpg_errmgr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpg_errmgr;

typedef struct jpg_srcmgr {
    struct jpeg_source_mgr pub;
    int hit_eof;   /* the decoder wanted bytes past the end of the data */
} jpg_srcmgr;

static const JOCTET jpg_fake_eoi[2] = {0xFF, JPEG_EOI};

static void jpg_error_exit(j_common_ptr ci) {
    jpg_errmgr *e = (jpg_errmgr *)ci->err;
    ci->err->format_message(ci, e->msg);
    longjmp(e->jb, 1);
}

static void jpg_output_message(j_common_ptr ci) { (void)ci; }

static void jpg_emit_message(j_common_ptr ci, int level) {
    if (level < 0) ci->err->num_warnings++;
}

static void jpg_init_source(j_decompress_ptr ci) { (void)ci; }
static void jpg_term_source(j_decompress_ptr ci) { (void)ci; }

static boolean jpg_fill_input(j_decompress_ptr ci) {
    jpg_srcmgr *s = (jpg_srcmgr *)ci->src;
    s->hit_eof = 1;
    s->pub.next_input_byte = jpg_fake_eoi;
    s->pub.bytes_in_buffer = 2;
    return TRUE;
}

static void jpg_skip_input(j_decompress_ptr ci, long n) {
    jpg_srcmgr *s = (jpg_srcmgr *)ci->src;
    if (n <= 0) return;
    if ((size_t)n > s->pub.bytes_in_buffer) {
        jpg_fill_input(ci);
        return;
    }
    s->pub.next_input_byte += n;
    s->pub.bytes_in_buffer -= (size_t)n;
}

#define MC_MULDIV255(a, b) (((((a) * (b) + 128) >> 8) + ((a) * (b) + 128)) >> 8)

static mc_status decode_jpeg(const uint8_t *data, size_t len, mc_image *out, int *orient,
                             mc_error *err) {
    struct jpeg_decompress_struct ci;
    jpg_errmgr je;
    jpg_srcmgr src;
    uint8_t *volatile pix = NULL;
    JSAMPLE *volatile row = NULL;
    const char *volatile fail_msg = NULL;
    mc_status volatile fail_status = MC_ERR_IMAGE;
    mc_status volatile preset = MC_OK;
    char msgbuf[64];

    memset(&ci, 0, sizeof ci);
    memset(&src, 0, sizeof src);
    je.msg[0] = 0;
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpg_error_exit;
    je.pub.output_message = jpg_output_message;
    je.pub.emit_message = jpg_emit_message;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&ci);
        free(pix);
        free(row);
        if (preset) return preset;   /* err already filled */
        if (fail_msg) return mc_fail(err, fail_status, "%s", fail_msg);
        return mc_fail(err, MC_ERR_IMAGE, "JPEG: broken data stream: %s", je.msg);
    }
    jpeg_create_decompress(&ci);
    src.pub.init_source = jpg_init_source;
    src.pub.fill_input_buffer = jpg_fill_input;
    src.pub.skip_input_data = jpg_skip_input;
    src.pub.resync_to_restart = jpeg_resync_to_restart;
    src.pub.term_source = jpg_term_source;
    src.pub.next_input_byte = data;
    src.pub.bytes_in_buffer = len;
    ci.src = &src.pub;
    jpeg_save_markers(&ci, JPEG_APP0 + 1, 0xFFFF);

    jpeg_read_header(&ci, TRUE);
    if (src.hit_eof) {
        fail_msg = "JPEG: image file is truncated";
        longjmp(je.jb, 1);
    }
    int nc = ci.num_components;
    if (nc == 1) ci.out_color_space = JCS_GRAYSCALE;
    else if (nc == 3) ci.out_color_space = JCS_RGB;
    else if (nc == 4) ci.out_color_space = JCS_CMYK;   /* Pillow: "CMYK;I" (Adobe inverted) */
    else {
        snprintf(msgbuf, sizeof msgbuf, "JPEG: cannot handle %d-layer images", nc);
        fail_msg = msgbuf;
        longjmp(je.jb, 1);
    }
    if ((preset = img_check_size("JPEG", (long)ci.image_width, (long)ci.image_height, err)))
        longjmp(je.jb, 1);
    /* Pillow's defaults: JDCT_ISLOW, fancy upsampling, no scaling. */
    ci.dct_method = JDCT_ISLOW;
    ci.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&ci);
    const int w = (int)ci.output_width, h = (int)ci.output_height;
    const int oc = ci.output_components;
    if (oc != nc) {
        fail_msg = "JPEG: unexpected number of output components";
        longjmp(je.jb, 1);
    }
    pix = mc_malloc_array((size_t)w * (size_t)h, 3);
    row = mc_malloc_array((size_t)w, (size_t)oc);
    if (!pix || !row) {
        fail_msg = "JPEG: out of memory";
        fail_status = MC_ERR_NOMEM;
        longjmp(je.jb, 1);
    }
    while ((int)ci.output_scanline < h) {
        JSAMPROW rp = row;
        int y = (int)ci.output_scanline;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1) {
            fail_msg = "JPEG: image file is truncated";
            longjmp(je.jb, 1);
        }
        uint8_t *o = pix + (size_t)y * w * 3;
        const uint8_t *r = row;
        if (oc == 1) {
            for (int x = 0; x < w; x++) o[x * 3] = o[x * 3 + 1] = o[x * 3 + 2] = r[x];
        } else if (oc == 3) {
            memcpy(o, r, (size_t)w * 3);
        } else {
            /* Inverted CMYK (Pillow's "CMYK;I" raw mode), then Convert.c's cmyk2rgb. */
            for (int x = 0; x < w; x++) {
                int nk = r[x * 4 + 3];   /* 255 - (255 - K) */
                for (int c = 0; c < 3; c++) {
                    int cc = 255 - r[x * 4 + c];
                    int v = nk - MC_MULDIV255(cc, nk);
                    o[x * 3 + c] = (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255);
                }
            }
        }
    }
    if (src.hit_eof) {
        fail_msg = "JPEG: image file is truncated";
        longjmp(je.jb, 1);
    }
    /* The first APP1 segment that starts with "Exif\0" is the one Pillow keeps. */
    *orient = 0;
    for (jpeg_saved_marker_ptr m = ci.marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 5 && !memcmp(m->data, "Exif", 5)) {
            *orient = exif_orientation(m->data, m->data_length);
            break;
        }
    }
    /* Pillow ignores what follows the last scanline; so do we (no finish). */
    jpeg_destroy_decompress(&ci);
    free(row);
    out->width = w;
    out->height = h;
    out->rgb = pix;
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* PNG                                                                       */
/* ------------------------------------------------------------------------ */

typedef struct png_ctx {
    const uint8_t *data;
    size_t len, pos;
    char msg[200];
} png_ctx;

static void png_read_cb(png_structp png, png_bytep out, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "image file is truncated");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

static void png_error_cb(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static inline unsigned png_sample(const uint8_t *row, int x, int bits) {
    if (bits == 8) return row[x];
    int bit = x * bits;
    return (row[bit >> 3] >> (8 - bits - (bit & 7))) & ((1u << bits) - 1);
}

/* Pillow's PNG modes: gray 1/2/4/8 bit -> "1"/L (values scaled to 0..255),
 * gray 16 -> I then clipped to 0..255 by convert("RGB"), RGB(A) 16 and LA 16
 * keep the high byte, P -> palette lookup (entries past the PLTE keep the
 * grey ramp), alpha dropped without compositing. */
static void png_row_to_rgb(const uint8_t *in, uint8_t *o, int w, int ct, int bits,
                           const uint8_t *pal) {
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY:
        for (int x = 0; x < w; x++) {
            unsigned v;
            if (bits == 16) {
                v = (unsigned)in[x * 2] << 8 | in[x * 2 + 1];
                if (v > 255) v = 255;
            } else {
                v = png_sample(in, x, bits);
                v *= bits == 1 ? 255 : bits == 2 ? 85 : bits == 4 ? 17 : 1;
            }
            o[x * 3] = o[x * 3 + 1] = o[x * 3 + 2] = (uint8_t)v;
        }
        break;
    case PNG_COLOR_TYPE_PALETTE:
        for (int x = 0; x < w; x++) memcpy(o + x * 3, pal + png_sample(in, x, bits) * 3, 3);
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
        int step = bits == 16 ? 4 : 2;
        for (int x = 0; x < w; x++) o[x * 3] = o[x * 3 + 1] = o[x * 3 + 2] = in[x * step];
        break;
    }
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
        int ch = ct == PNG_COLOR_TYPE_RGB ? 3 : 4, bs = bits == 16 ? 2 : 1;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) o[x * 3 + c] = in[(x * ch + c) * bs];
        break;
    }
    default: break;
    }
}

static mc_status decode_png(const uint8_t *data, size_t len, mc_image *out, int *orient,
                            mc_error *err) {
    png_ctx ctx = {data, len, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_cb,
                                             png_warning_cb);
    if (!png) return mc_fail(err, MC_ERR_NOMEM, "PNG: out of memory");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return mc_fail(err, MC_ERR_NOMEM, "PNG: out of memory");
    }
    uint8_t *volatile raw = NULL;
    uint8_t *volatile pix = NULL;
    png_bytep *volatile rows = NULL;
    const char *volatile fail_msg = NULL;
    mc_status volatile preset = MC_OK;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(raw);
        free(pix);
        free(rows);
        if (preset) return preset;   /* err already filled */
        if (fail_msg) return mc_fail(err, MC_ERR_IMAGE, "%s", fail_msg);
        return mc_fail(err, MC_ERR_IMAGE, "PNG: %s", ctx.msg);
    }
    png_set_read_fn(png, &ctx, png_read_cb);
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_DEFAULT);
    png_read_info(png, info);
    png_uint_32 w32, h32;
    int bits, ct, il;
    png_get_IHDR(png, info, &w32, &h32, &bits, &ct, &il, NULL, NULL);
    if ((preset = img_check_size("PNG", (long)w32, (long)h32, err))) png_longjmp(png, 1);
    const int w = (int)w32, h = (int)h32;
    uint8_t pal[256 * 3];
    for (int i = 0; i < 256; i++) pal[i * 3] = pal[i * 3 + 1] = pal[i * 3 + 2] = (uint8_t)i;
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte = NULL;
        int np = 0;
        if (png_get_PLTE(png, info, &plte, &np) && plte) {
            for (int i = 0; i < np && i < 256; i++) {
                pal[i * 3] = plte[i].red;
                pal[i * 3 + 1] = plte[i].green;
                pal[i * 3 + 2] = plte[i].blue;
            }
        }
    }
    if (il != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    raw = mc_malloc_array((size_t)h, rowbytes);
    pix = mc_malloc_array((size_t)w * (size_t)h, 3);
    rows = mc_malloc_array((size_t)h, sizeof(png_bytep));
    if (!raw || !pix || !rows) {
        fail_msg = "PNG: out of memory";
        png_longjmp(png, 1);
    }
    for (int y = 0; y < h; y++) rows[y] = raw + (size_t)y * rowbytes;
    png_read_image(png, rows);
    for (int y = 0; y < h; y++)
        png_row_to_rgb(rows[y], pix + (size_t)y * w * 3, w, ct, bits, pal);
    free(rows);
    rows = NULL;
    free(raw);
    raw = NULL;

    /* Chunks after the image data (eXIf may be there); damage there is ignored. */
    if (!setjmp(png_jmpbuf(png))) png_read_end(png, info);
    /* Pillow: the eXIf chunk, else an ImageMagick raw profile; when neither
     * has the tag, XMP's tiff:Orientation. */
    int o = -1, have_exif = 0;
#ifdef PNG_eXIf_SUPPORTED
    {
        png_uint_32 ne = 0;
        png_bytep ex = NULL;
        if (png_get_eXIf_1(png, info, &ne, &ex) && ex) {
            have_exif = 1;
            o = exif_orientation(ex, ne);
        }
    }
#endif
    png_textp texts = NULL;
    int ntext = 0;
    png_get_text(png, info, &texts, &ntext);
    for (int i = 0; !have_exif && i < ntext; i++) {
        if (texts[i].key && texts[i].text && !strcmp(texts[i].key, "Raw profile type exif")) {
            size_t tl = texts[i].compression >= PNG_ITXT_COMPRESSION_NONE ? texts[i].itxt_length
                                                                        : texts[i].text_length;
            have_exif = 1;
            o = raw_profile_orientation(texts[i].text, tl);
        }
    }
    for (int i = 0; o < 0 && i < ntext; i++) {
        if (texts[i].key && texts[i].text && !strcmp(texts[i].key, "XML:com.adobe.xmp")) {
            size_t tl = texts[i].compression >= PNG_ITXT_COMPRESSION_NONE ? texts[i].itxt_length
                                                                        : texts[i].text_length;
            o = xmp_orientation(texts[i].text, tl);
        }
    }
    *orient = o;
    png_destroy_read_struct(&png, &info, NULL);
    out->width = w;
    out->height = h;
    out->rgb = pix;
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* WebP                                                                      */
/* ------------------------------------------------------------------------ */

static mc_status decode_webp(const uint8_t *data, size_t len, mc_image *out, int *orient,
                             mc_error *err) {
    WebPBitstreamFeatures feat;
    if (WebPGetFeatures(data, len, &feat) != VP8_STATUS_OK)
        return mc_fail(err, MC_ERR_IMAGE, "WebP: malformed or truncated file");
    mc_status st = img_check_size("WebP", feat.width, feat.height, err);
    if (st != MC_OK) return st;
    WebPData wd = {data, len};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, NULL);   /* RGBA, as Pillow asks */
    if (!dec) return mc_fail(err, MC_ERR_IMAGE, "WebP: could not create decoder object");
    WebPAnimInfo ai;
    uint8_t *frame = NULL;
    int ts = 0;
    if (!WebPAnimDecoderGetInfo(dec, &ai)) {
        WebPAnimDecoderDelete(dec);
        return mc_fail(err, MC_ERR_IMAGE, "WebP: cannot read the canvas size");
    }
    st = img_check_size("WebP", (long)ai.canvas_width, (long)ai.canvas_height, err);
    if (st != MC_OK) {
        WebPAnimDecoderDelete(dec);
        return st;
    }
    if (!WebPAnimDecoderGetNext(dec, &frame, &ts) || !frame) {
        WebPAnimDecoderDelete(dec);
        return mc_fail(err, MC_ERR_IMAGE, "WebP: failed to decode the first frame");
    }
    const int w = (int)ai.canvas_width, h = (int)ai.canvas_height;
    uint8_t *pix = mc_malloc_array((size_t)w * (size_t)h, 3);
    if (!pix) {
        WebPAnimDecoderDelete(dec);
        return mc_fail(err, MC_ERR_NOMEM, "WebP: out of memory");
    }
    for (size_t i = 0, n = (size_t)w * h; i < n; i++) memcpy(pix + i * 3, frame + i * 4, 3);
    *orient = 0;
    const WebPDemuxer *dm = WebPAnimDecoderGetDemuxer(dec);
    WebPChunkIterator it;
    if (dm && WebPDemuxGetChunk(dm, "EXIF", 1, &it)) {
        *orient = exif_orientation(it.chunk.bytes, it.chunk.size);
        WebPDemuxReleaseChunkIterator(&it);
    }
    WebPAnimDecoderDelete(dec);
    out->width = w;
    out->height = h;
    out->rgb = pix;
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                              */
/* ------------------------------------------------------------------------ */

mc_status mc_image_load_memory(const void *data_, size_t len, int apply_exif, mc_image *out,
                               mc_error *err) {
    const uint8_t *d = data_;
    if (!out) return mc_fail(err, MC_ERR_INVALID_ARG, "image: NULL output");
    memset(out, 0, sizeof *out);
    if (!d && len) return mc_fail(err, MC_ERR_INVALID_ARG, "image: NULL data");
    if (len == 0) return mc_fail(err, MC_ERR_IMAGE, "cannot identify image file (empty)");
    int orient = 0;
    mc_status st;
    if (len >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        st = decode_jpeg(d, len, out, &orient, err);
    else if (len >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8))
        st = decode_png(d, len, out, &orient, err);
    else if (len >= 16 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBPVP8", 7))
        st = decode_webp(d, len, out, &orient, err);
    else if (len >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6)))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "GIF images are not supported (JPEG, PNG, WebP are)");
    else if (len >= 2 && d[0] == 'B' && d[1] == 'M')
        return mc_fail(err, MC_ERR_UNSUPPORTED, "BMP images are not supported (JPEG, PNG, WebP are)");
    else if (len >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4)))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "TIFF images are not supported (JPEG, PNG, WebP are)");
    else
        return mc_fail(err, MC_ERR_IMAGE,
                       "cannot identify image file (not a JPEG, PNG or WebP image)");
    if (st != MC_OK) {
        memset(out, 0, sizeof *out);
        return st;
    }
    if (apply_exif && (st = img_apply_orientation(out, orient, err)) != MC_OK) {
        mc_image_free(out);
        return st;
    }
    return MC_OK;
}

mc_status mc_image_load_memory_max(const void *data, size_t len, int apply_exif, size_t max_pixels,
                                   mc_image *out, int *over_limit, mc_error *err) {
    size_t saved = tl_max_pixels;
    tl_max_pixels = max_pixels;
    tl_over_limit = 0;
    mc_status st = mc_image_load_memory(data, len, apply_exif, out, err);
    if (over_limit) *over_limit = tl_over_limit;
    tl_max_pixels = saved;
    return st;
}

int mc_image_name_supported(const char *path) {
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot || strchr(dot, '/')) return 0;
    static const char *const ext[] = {".jpg", ".jpeg", ".jpe", ".png", ".webp"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

mc_status mc_image_load(const char *path, int apply_exif, mc_image *out, mc_error *err) {
    if (!out) return mc_fail(err, MC_ERR_INVALID_ARG, "image: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return mc_fail(err, MC_ERR_INVALID_ARG, "image: NULL path");
    mc_file_map map;
    mc_status st = mc_file_map_open(path, &map, err);
    if (st != MC_OK) return st;
    st = mc_image_load_memory(map.data, map.size, apply_exif, out, err);
    mc_file_map_close(&map);
    if (st != MC_OK) mc_error_prefix(err, "%s", path);
    return st;
}
