/*
 * fuzz_paug.c - libFuzzer entry point for the reinforced-dataset
 * augmentation parameters: a KEY.paug.json document is parsed and every
 * parameter set it yields (up to 4) is re-applied to a small image.
 */
#include "data/augment.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t pixels[48 * 40 * 3];
    for (size_t i = 0; i < sizeof pixels; i++) pixels[i] = (uint8_t)(i * 37u + (i >> 5));
    mc_image img = {48, 40, pixels};
    mc_aug_params *p = NULL;
    size_t n = 0;
    mc_error err;
    mc_aug_layout all = {1, 1, 1, 0, 1};
    const mc_aug_layout *layouts[2] = {NULL, &all};
    for (int l = 0; l < 2; l++) {
        if (mc_aug_parse_paug((const char *)data, size, layouts[l], &p, &n, &err) != MC_OK) continue;
        for (size_t i = 0; i < n && i < 4; i++) {
            mc_image out;
            if (mc_aug_reapply(&img, &p[i], 24, MC_INTERP_BICUBIC, &out, &err) == MC_OK)
                mc_image_free(&out);
        }
        free(p);
    }
    return 0;
}
