/*
 * fuzz_pthgz.c - libFuzzer entry point for gzip decompression (bounded) and
 * the .pth.gz reader (gunzip, then the torch.save zip in memory).
 */
#include "data/npz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mc_error err;
    mc_array_set set;
    if (mc_pthgz_read_memory(data, size, "fuzz.pth.gz", 1 << 22, &set, &err) == MC_OK) mc_array_set_free(&set);
    uint8_t *out;
    size_t n;
    if (mc_gunzip_memory(data, size, "fuzz.gz", 1 << 20, &out, &n, &err) == MC_OK) free(out);
    return 0;
}
