/*
 * fuzz_tokenizer.c - libFuzzer entry point for tokenizer input text: the
 * cleaning steps (UTF-8 decoding, ftfy, HTML unescaping, whitespace), the CLIP
 * regex and BPE, through mc_tokenizer_encode_n.  The first byte picks the
 * context length (77, or a short one that truncates), the rest is the text.
 * The vocabulary is loaded once from $MOBILECLIP_VOCAB (or where
 * mc_tokenizer_find_vocab looks); without one the target aborts.
 */
#include "mobileclip.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mc_tokenizer *vocab(void) {
    static mc_tokenizer *tok;
    if (!tok) {
        mc_error err;
        if (mc_tokenizer_load(NULL, &tok, &err) != MC_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s (set %s)\n", err.message, MC_VOCAB_ENV);
            abort();
        }
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int lengths[4] = {MC_CONTEXT_LENGTH, 1, 2, 7};
    if (size < 1) return 0;
    int n = lengths[data[0] & 3];
    int32_t ids[MC_CONTEXT_LENGTH];
    mc_error err;
    if (mc_tokenizer_encode_n(vocab(), (const char *)data + 1, size - 1, n, ids, &err) == MC_OK) {
        volatile int32_t sink = 0;
        for (int i = 0; i < n; i++) sink ^= ids[i];   /* every id written */
        (void)sink;
    }
    char *clean = NULL;
    if (mc_tokenizer_clean_n((const char *)data + 1, size - 1, &clean, &err) == MC_OK) free(clean);
    return 0;
}
