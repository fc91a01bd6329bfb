/*
 * fuzz_tar.c - libFuzzer entry point for the shard readers: the streaming
 * tar reader (small limits), webdataset grouping and DataCompDR record
 * decoding over the same bytes, and brace expansion of them as a pattern.
 */
#include "data/shard.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mc_error err;
    mc_tar_params tp = mc_tar_default_params();
    tp.max_member_size = 1 << 16;
    tp.max_header_size = 1 << 12;
    tp.max_name_len = 512;
    mc_tar *t;
    if (mc_tar_open_memory(data, size, "fuzz.tar", &tp, &t, &err) == MC_OK) {
        for (int i = 0; i < 10000; i++) {
            mc_tar_member m;
            int eof;
            mc_status st = mc_tar_next(t, &m, &eof, &err);
            if (st != MC_OK && mc_tar_failed(t)) break;
            if (st == MC_OK && eof) break;
            if (st == MC_OK && (i & 1)) free(mc_tar_take_data(t));
        }
        mc_tar_close(t);
    }
    mc_shard_params p = mc_shard_default_params();
    p.tar = tp;
    p.dr.require_image = 0;
    p.dr.max_array_bytes = 1 << 22;
    mc_shard_reader *r;
    if (mc_shard_open_memory(data, size, "fuzz.tar", &p, &r, &err) == MC_OK) {
        mc_dr_record *rec;
        while (mc_shard_next(r, &rec, &err) == MC_OK && rec) {
            if (rec->n_syn) (void)mc_dr_syn_embedding(rec, NULL, 0, &err);
            mc_dr_record_free(rec);
        }
        mc_shard_close(r);
    }
    if (size < 512) {
        char *s = malloc(size + 1);
        if (s) {
            memcpy(s, data, size);
            s[size] = 0;
            char **list;
            size_t n;
            if (mc_shard_expand(s, 2000, &list, &n, &err) == MC_OK) mc_shard_list_free(list, n);
            size_t kl;
            const char *ext;
            (void)mc_wds_split_name(s, &kl, &ext);
            free(s);
        }
    }
    return 0;
}
