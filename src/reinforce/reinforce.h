/*
 * reinforce/reinforce.h - turning image-text webdataset shards into
 * DataCompDR shards (docs/reinforce.md).
 *
 * For every input shard IN/NAME.tar the run writes OUT/NAME.tar: each sample
 * keeps its members (image, txt, json, url.txt, syn.json, ...) and gets
 *   KEY.paug.json  {"param_aug": [one compressed parameter list per augmentation]}
 *   KEY.npz        image_emb float32 [A, D] and text_emb float32 [1 + K, D]
 *   (or KEY.pth.gz: the same in bfloat16, gzip of a torch.save dict)
 * where D is the sum of the teachers' widths (each teacher's L2-normalised
 * embedding, in teacher order), A the augmentations and K the synthetic
 * captions of syn.json's syn_key (row 0 of text_emb is the caption "txt");
 * in the DFNDR layout text_emb is [1, D] and every syn.json list KEY gets
 * "KEY_emb" [n, D] (mc_reinforce_layout).
 *
 * Augmentations are drawn fresh (sampler.h; the stream of a sample is a
 * function of seed, shard name and key) or taken, with the synthetic
 * captions, from existing shards of the same names (reuse: recomputing an
 * existing dataset's embeddings with other teachers).
 *
 * Beside the shards: config.json (the augmentation config, copied), and
 * when every shard is done manifest.jsonl (one line per shard: its name,
 * samples written and skipped).  OUT/.reinforce/ records each finished
 * shard; a run started again skips those and redoes the others (a shard is
 * written to a temporary file and renamed when complete, so a killed run
 * leaves no partial shard).  OUT/.reinforce/settings.json holds the settings
 * the folder was made with: another run must use the same ones.
 *
 * Under MPI (dist.h) rank r takes input shards r, r + world, ...; every rank
 * loads the teachers itself.
 */
#ifndef MC_REINFORCE_H
#define MC_REINFORCE_H

#include "dist/dist.h"

/* Most augmentations per sample (drawn or reused; the released data: 30). */
#define MC_REINFORCE_MAX_AUGS 1024
/* Most syn.json caption lists embedded in the DFNDR layout. */
#define MC_REINFORCE_MAX_SYN_KEYS 16

/* Where the synthetic captions' embeddings go. */
typedef enum mc_reinforce_layout {
    MC_REINFORCE_LAYOUT_AUTO = 0,    /* with reuse: as the reused sample; else DataCompDR */
    MC_REINFORCE_LAYOUT_DATACOMPDR,  /* text_emb [1 + K, D]: the caption, then syn_key's K captions */
    MC_REINFORCE_LAYOUT_DFNDR        /* text_emb [1, D] and "<key>_emb" [n_key, D] for every syn.json list */
} mc_reinforce_layout;

typedef struct mc_reinforce_progress {
    int rank;
    const char *shard;        /* the input shard being written */
    size_t shard_index;       /* 0-based among this rank's shards */
    size_t shard_count;       /* this rank's shards */
    uint64_t samples;         /* written in this shard so far */
    uint64_t skipped;         /* skipped in this shard so far */
    uint64_t total_samples;   /* written by this rank in this run */
    double samples_per_s;     /* this rank's rate in this run */
    int event;                /* 0: a sample, 1: shard finished, 2: shard already done (skipped) */
} mc_reinforce_progress;

typedef struct mc_reinforce_params {
    const char *const *inputs;       /* input shard paths */
    size_t n_inputs;
    const char *out_dir;
    const mc_model *const *teachers; /* each with both towers and its tokenizer */
    const char *const *teacher_names;/* how settings.json names them */
    int n_teachers;
    const char *config_path;         /* the augmentation config (Apple's datacompdr12m.json layout) */
    int num_augs;                    /* augmentations drawn per sample (fresh); with reuse 0 = as stored */
    const char *const *reuse;        /* shards to take parameters and captions from, or NULL */
    size_t n_reuse;
    int bf16;                        /* write pth.gz bfloat16 instead of npz float32 */
    const char *syn_key;             /* DataCompDR layout: syn.json key of the synthetic captions
                                        (NULL: "syn_text") */
    mc_reinforce_layout layout;
    uint64_t seed;
    int threads;                     /* per teacher context (0: all cores) */
    mc_dist *dist;                   /* NULL: one process */
    void (*progress)(void *user, const mc_reinforce_progress *p);
    void *user;
} mc_reinforce_params;

typedef struct mc_reinforce_stats {
    uint64_t shards_written;  /* by this rank in this run */
    uint64_t shards_done_before;
    uint64_t samples;         /* written by this rank */
    uint64_t skipped;         /* skipped (image undecodable, no caption, missing in the reuse shard, ...) */
    mc_error last_skip;       /* why the last one was skipped */
    double seconds;
} mc_reinforce_stats;

mc_reinforce_params mc_reinforce_default_params(void);

/* Runs this rank's share.  Every rank must call it (it ends with an
 * agreement); MC_OK only when every rank succeeded and (rank 0) the
 * manifest is written. */
mc_status mc_reinforce_run(const mc_reinforce_params *p, mc_reinforce_stats *stats, mc_error *err);

#endif /* MC_REINFORCE_H */
