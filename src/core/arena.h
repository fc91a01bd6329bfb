/*
 * core/arena.h - the arena a model's weights live in: few large 64-byte
 * aligned allocations, freed at once.
 */
#ifndef MC_ARENA_H
#define MC_ARENA_H

#include "core/core.h"

typedef struct mc_arena_chunk mc_arena_chunk;
typedef struct mc_arena {
    mc_arena_chunk *head;
    size_t total;          /* bytes handed out */
} mc_arena;

/* 64-byte aligned, zeroed memory that lives until mc_arena_free. */
void *mc_arena_alloc(mc_arena *a, size_t bytes);
float *mc_arena_floats(mc_arena *a, size_t n);   /* NULL on overflow/failure */
void mc_arena_free(mc_arena *a);
/* Says that [p, p + bytes), memory of a, will not be read again: the whole
 * pages inside it go back to the system (Linux madvise; elsewhere nothing
 * happens).  Their addresses stay a's until mc_arena_free. */
void mc_arena_release(mc_arena *a, const void *p, size_t bytes);

#endif /* MC_ARENA_H */
