/*
 * io/image_write.h - writing images (PNG), for looking at what the pipeline
 * made.  Decoding and resizing are in mobileclip.h (io/image.c, resize.c).
 */
#ifndef MC_IO_IMAGE_WRITE_H
#define MC_IO_IMAGE_WRITE_H

#include "core/core.h"

/* Writes an 8-bit RGB image as a PNG, atomically (temporary file, fsync, rename). */
mc_status mc_image_write_png(const char *path, const mc_image *img, mc_error *err);

#endif /* MC_IO_IMAGE_WRITE_H */
