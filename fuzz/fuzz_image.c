/*
 * fuzz_image.c - libFuzzer target: mc_image_load_memory over arbitrary bytes
 * (JPEG, PNG, WebP decoders and the EXIF reader), then a small resize of
 * whatever decodes.
 */
#include "mobileclip.h"

#include <stddef.h>
#include <stdint.h>

/* Defined in src/io/image.c: the decoders' pixel limit, lowered here so that
 * hostile headers cannot ask for gigabytes within the fuzzer's memory limit. */
extern size_t mc_image_max_pixels;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mc_image_max_pixels = (size_t)4 << 20;
    mc_image img;
    mc_error err;
    if (mc_image_load_memory(data, size, 1, &img, &err) != MC_OK) return 0;
    mc_image out;
    int interp = size & 1;
    if (mc_image_resize_crop(&img, 17, (mc_interp)interp, (mc_resize_mode)((size >> 1) & 1), &out,
                             &err) == MC_OK)
        mc_image_free(&out);
    mc_image_free(&img);
    return 0;
}
