/*
 * fuzz_npz.c - libFuzzer entry point for the .npz reader (zip with stored
 * and deflated members, CRCs, size bounds) and the .npy header parser.
 */
#include "data/npz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mc_error err;
    mc_array_set set;
    if (mc_npz_read_memory(data, size, "fuzz.npz", 1 << 22, &set, &err) == MC_OK) {
        (void)mc_array_set_find(&set, "image_emb");
        mc_array_set_free(&set);
    }
    mc_array a;
    if (mc_npy_parse_memory(data, size, "fuzz.npy", &a, &err) == MC_OK) free(a.data);
    return 0;
}
