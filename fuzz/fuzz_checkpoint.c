/*
 * fuzz_checkpoint.c - libFuzzer entry point for the checkpoint readers
 * (torch.save zip + pickle, safetensors) through the in-memory open.
 */
#include "core/core.h"
#include "io/ckpt_open.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mc_checkpoint *ck = NULL;
    mc_error err;
    if (mc_checkpoint_open_memory(data, size, "fuzz", &ck, &err) == MC_OK) {
        /* touch every byte of every tensor so a bad pointer shows up */
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < mc_checkpoint_count(ck); i++) {
            const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
            const uint8_t *p = t->data;
            for (size_t k = 0; k < t->nbytes; k++) sink ^= p[k];
            (void)mc_checkpoint_find(ck, t->name);
        }
        (void)sink;
        mc_checkpoint_close(ck);
    }
    return 0;
}
