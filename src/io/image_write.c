/*
 * io/image_write.c - writing an 8-bit RGB image as PNG (libpng), atomically.
 */
#include "io/image_write.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
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
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
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
