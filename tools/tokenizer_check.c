/*
 * tokenizer_check.c - batch harness for tools/tokenizer_check.py: reads
 * length-prefixed UTF-8 texts from standard input (4-byte little-endian
 * length, then the bytes) and prints the CONTEXT_LENGTH token ids of each
 * on one line, or "ERR message".
 * usage: tokenizer_check VOCAB [CONTEXT_LENGTH]
 */
#include "mobileclip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s VOCAB [CONTEXT_LENGTH] < records\n", argv[0]);
        return 2;
    }
    int ctx = argc > 2 ? atoi(argv[2]) : MC_CONTEXT_LENGTH;
    if (ctx < 1) return 2;
    mc_error err;
    mc_error_clear(&err);
    mc_tokenizer *tok = NULL;
    if (mc_tokenizer_load(argv[1], &tok, &err) != MC_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    int32_t *ids = malloc((size_t)ctx * sizeof *ids);
    char *buf = NULL;
    size_t cap = 0;
    unsigned char hdr[4];
    while (ids && fread(hdr, 1, 4, stdin) == 4) {
        size_t n = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
        if (n + 1 > cap) {
            char *nb = realloc(buf, n + 1);
            if (!nb) break;
            buf = nb;
            cap = n + 1;
        }
        if (fread(buf, 1, n, stdin) != n) break;
        if (mc_tokenizer_encode_n(tok, buf, n, ctx, ids, &err) != MC_OK) {
            printf("ERR %s\n", err.message);
            continue;
        }
        for (int i = 0; i < ctx; i++) {
            printf(i ? " %d" : "%d", ids[i]);
        }
        putchar('\n');
    }
    free(buf);
    free(ids);
    mc_tokenizer_free(tok);
    return 0;
}
