/*
 * io/image_write.c - writing an 8-bit RGB image as PNG (libpng), atomically,
 * and as JPEG into memory (libjpeg).
 */
#include "io/image_write.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>

#include <jerror.h>
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libpng reports errors by longjmp; this keeps the message for mc_error. */
typedef struct png_ctx {
    jmp_buf jmp;
    char msg[200];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* Encodes img into the open file f; returns 0 on success (message in c->msg). */
static int png_encode(FILE *f, const mc_image *img, png_ctx *c) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
    if (!png) { snprintf(c->msg, sizeof c->msg, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(c->msg, sizeof c->msg, "out of memory");
        return -1;
    }
    if (setjmp(c->jmp)) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++)
        png_write_row(png, (png_const_bytep)(img->rgb + (size_t)y * (size_t)img->width * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

mc_status mc_image_write_png(const char *path, const mc_image *img, mc_error *err) {
    if (!img || !img->rgb || img->width < 1 || img->height < 1)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: no image to write", path);
    char tmp[4096];
    if (mc_temp_name(path, tmp, sizeof tmp) != 0)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot create", path);
    png_ctx c;
    memset(&c, 0, sizeof c);
    int ok = png_encode(f, img, &c) == 0;
    if (!ok) {   /* libpng's own message */
        fclose(f);
        remove(tmp);
        return mc_fail(err, MC_ERR_IO, "%s: write failed%s%s", path, c.msg[0] ? ": " : "", c.msg);
    }
    return mc_file_commit(f, tmp, path, 1, err);
}

/* libjpeg reports errors through error_exit, which must not return: longjmp. */
typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    c->pub.format_message(cinfo, c->msg);
    longjmp(c->jmp, 1);
}

mc_status mc_image_encode_jpeg(const mc_image *img, int quality, unsigned char **out, size_t *len,
                               mc_error *err) {
    if (!out || !len) return mc_fail(err, MC_ERR_INVALID_ARG, "JPEG encoder: NULL output");
    *out = NULL;
    *len = 0;
    if (!img || !img->rgb || img->width < 1 || img->height < 1)
        return mc_fail(err, MC_ERR_INVALID_ARG, "JPEG encoder: no image");
    if (quality < 1 || quality > 100)
        return mc_fail(err, MC_ERR_INVALID_ARG, "JPEG encoder: quality %d is not in 1..100", quality);
    struct jpeg_compress_struct ci;
    jpeg_ctx c;
    memset(&c, 0, sizeof c);
    ci.err = jpeg_std_error(&c.pub);
    c.pub.error_exit = jpeg_on_error;
    /* volatile: read after a longjmp */
    unsigned char *volatile buf = NULL;
    unsigned long volatile blen = 0;
    if (setjmp(c.jmp)) {
        jpeg_destroy_compress(&ci);
        free(buf);
        return mc_fail(err, MC_ERR_IMAGE, "JPEG encoder: %s", c.msg);
    }
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, (unsigned char **)&buf, (unsigned long *)&blen);
    ci.image_width = (JDIMENSION)img->width;
    ci.image_height = (JDIMENSION)img->height;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(img->rgb + (size_t)ci.next_scanline * (size_t)img->width * 3);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    *out = buf;
    *len = blen;
    return MC_OK;
}
