/*
 * io/image.h - image decoding beyond what mobileclip.h offers: a decode with
 * a pixel limit of its own, for bytes from the network.
 */
#ifndef MC_IO_IMAGE_H
#define MC_IO_IMAGE_H

#include "core/core.h"

/* mc_image_load_memory, refusing (MC_ERR_IMAGE, and *over_limit set) an
 * image of more than max_pixels pixels before its pixels are decoded (0: the
 * library's limit).  Thread-safe: the limit holds for this call only. */
mc_status mc_image_load_memory_max(const void *data, size_t len, int apply_exif, size_t max_pixels,
                                   mc_image *out, int *over_limit, mc_error *err);

#endif /* MC_IO_IMAGE_H */
