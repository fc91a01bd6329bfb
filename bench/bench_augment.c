/*
 * bench_augment.c - decode + re-application of stored DataCompDR
 * augmentations, ms per sample: every (sample, stored augmentation) pair of
 * a shard at size S, one thread, the minimum over rounds of the mean.  The
 * same work as bench/reference/time_reapply.py does with Pillow +
 * torchvision under Apple's transforms.py (make bench-augment runs both).
 *
 * usage: bench_augment SHARD [SIZE] [ROUNDS]
 */
#include "data/augment.h"
#include "data/shard.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_augment SHARD [SIZE] [ROUNDS]\n");
        return 2;
    }
    int size = argc > 2 ? atoi(argv[2]) : 256, rounds = argc > 3 ? atoi(argv[3]) : 3;
    /* As the CLI's data commands do (cli_keep_heap): image-sized buffers stay
     * in the heap; KEEP_HEAP=0 measures glibc's defaults (a map and page faults
     * per buffer, most of the time of a sample). */
    const char *kh = getenv("KEEP_HEAP");
    int keep = !kh || strcmp(kh, "0") != 0;
    if (keep) {
        mallopt(M_MMAP_THRESHOLD, 64 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
    mc_error err;
    mc_error_clear(&err);
    mc_shard_params sp = mc_shard_default_params();
    sp.dr.decode_embeddings = 0;
    mc_shard_reader *r = NULL;
    mc_dr_record *recs[4096];
    int n = 0;
    if (mc_shard_open(argv[1], &sp, &r, &err) != MC_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
    for (mc_dr_record *rec; n < 4096;) {
        if (mc_shard_next(r, &rec, &err) != MC_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
        if (!rec) break;
        recs[n++] = rec;
    }
    mc_shard_close(r);
    mc_aug_layout layout = mc_aug_layout_datacompdr();
    double best = 1e30, dec_best = 1e30;
    long pairs = 0;
    for (int round = 0; round < rounds; round++) {
        double t0 = now_s(), tdec = 0;
        pairs = 0;
        for (int i = 0; i < n; i++)
            for (size_t a = 0; a < recs[i]->n_aug; a++) {
                mc_image img = {0}, out = {0};
                mc_aug_params p;
                double d0 = now_s();
                mc_status st = mc_image_load_memory(recs[i]->image, recs[i]->image_size, 0, &img, &err);
                tdec += now_s() - d0;
                if (st == MC_OK) st = mc_aug_parse(&recs[i]->aug[a], &layout, &p, &err);
                if (st == MC_OK) st = mc_aug_reapply(&img, &p, size, MC_INTERP_BICUBIC, &out, &err);
                mc_image_free(&img);
                mc_image_free(&out);
                if (st != MC_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
                pairs++;
            }
        double ms = (now_s() - t0) * 1000.0 / (double)(pairs ? pairs : 1);
        if (ms < best) best = ms, dec_best = tdec * 1000.0 / (double)(pairs ? pairs : 1);
    }
    printf("ours ms_per_sample=%.3f size=%d pairs=%ld (decode %.3f, re-apply %.3f; 1 thread, heap %s)\n", best,
           size, pairs, dec_best, best - dec_best, keep ? "kept" : "glibc default");
    for (int i = 0; i < n; i++) mc_dr_record_free(recs[i]);
    return 0;
}
