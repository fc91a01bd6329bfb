/*
 * io/image_write.h - writing images: PNG files, for looking at what the
 * pipeline made, and JPEG in memory (thumbnails served over HTTP).  Decoding and resizing are in mobileclip.h (io/image.c, resize.c).
 */
#ifndef MC_IO_IMAGE_WRITE_H
#define MC_IO_IMAGE_WRITE_H

#include "core/core.h"

/* Writes an 8-bit RGB image as a PNG, atomically (temporary file, fsync, rename). */
mc_status mc_image_write_png(const char *path, const mc_image *img, mc_error *err);

/* Encodes an 8-bit RGB image as a baseline JPEG of the given quality
 * (1..100) into a malloc'd buffer *out of *len bytes. */
mc_status mc_image_encode_jpeg(const mc_image *img, int quality, unsigned char **out, size_t *len,
                               mc_error *err);

#endif /* MC_IO_IMAGE_WRITE_H */
