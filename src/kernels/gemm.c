/*
 * kernels/gemm.c - the blocked, packed SGEMM driver (cache blocks MC/KC/NC,
 * packing of A into MR-row panels and B into NR-column panels, edge tiles,
 * fused bias + activation epilogue, OpenMP split of C over threads), weights
 * pre-packed once in the panel layout (mc_qmat_pack; read back by
 * mc_qmat_unpack in qmat.c) and the optional cblas hook.
 */
#include "kernels/gemm.h"
#include "kernels/qmat.h"
#include "kernels/threads.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#else
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#endif
#ifdef MC_USE_OPENBLAS
#include <cblas.h>
#endif

/* ---- packing ---- */

/* A(i, p) = ta ? a[p * lda + i] : a[i * lda + p]; panel of mr <= MR rows, zero padded. */
static void pack_a(int ta, const float *a, int lda, int mr, int MR, int kc, float *dst) {
    if (ta) {
        for (int p = 0; p < kc; p++) {
            const float *src = a + (size_t)p * lda;
            int i = 0;
            for (; i < mr; i++) dst[i] = src[i];
            for (; i < MR; i++) dst[i] = 0;
            dst += MR;
        }
    } else {
        for (int i = 0; i < mr; i++) {
            const float *src = a + (size_t)i * lda;
            for (int p = 0; p < kc; p++) dst[(size_t)p * MR + i] = src[p];
        }
        for (int i = mr; i < MR; i++)
            for (int p = 0; p < kc; p++) dst[(size_t)p * MR + i] = 0;
    }
}

/* B(p, j) = tb ? b[j * ldb + p] : b[p * ldb + j]; panel of nr <= NR columns, zero padded. */
static void pack_b(int tb, const float *b, int ldb, int nr, int NR, int kc, float *dst) {
    if (!tb) {
        if (nr == NR && NR == 16) {   /* constant size: the copy is inlined as vector moves */
            for (int p = 0; p < kc; p++) memcpy(dst + (size_t)p * 16, b + (size_t)p * ldb, 16 * sizeof(float));
        } else if (nr == NR) {
            for (int p = 0; p < kc; p++) memcpy(dst + (size_t)p * NR, b + (size_t)p * ldb, NR * sizeof(float));
        } else {
            for (int p = 0; p < kc; p++) {
                const float *src = b + (size_t)p * ldb;
                int j = 0;
                for (; j < nr; j++) dst[j] = src[j];
                for (; j < NR; j++) dst[j] = 0;
                dst += NR;
            }
        }
    } else {
        for (int j = 0; j < nr; j++) {
            const float *src = b + (size_t)j * ldb;
            for (int p = 0; p < kc; p++) dst[(size_t)p * NR + j] = src[p];
        }
        for (int j = nr; j < NR; j++)
            for (int p = 0; p < kc; p++) dst[(size_t)p * NR + j] = 0;
    }
}

/* ---- the serial blocked product over C rows [m0, m1) and columns [n0, n1) ---- */

/* The same block computed directly, without packing buffers: the path taken
 * when scratch memory cannot be had (the kernels have no error return). */
static float qop_get(const mc_qop *o, int64_t r, int64_t c) {
    float v;
    mc_qmat_row_ref(o->q, o->row0 + r, c, 1, &v);
    return v;
}

static void gemm_block_plain(const mc_kset *ks, int ta, int tb, int m0, int m1, int n0, int n1, int k,
                             float alpha, const float *a, int lda, const mc_qop *qa, const float *b, int ldb,
                             const mc_qop *qb, float beta, float *c, int ldc, const float *brow,
                             const float *bcol, mc_act act) {
    for (int i = m0; i < m1; i++) {
        float *ci = c + (size_t)i * ldc;
        for (int j = n0; j < n1; j++) {
            float sum = 0;
            for (int p = 0; p < k; p++) {
                float av = qa ? qop_get(qa, i, p) : ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = qb ? qop_get(qb, j, p) : tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                sum += av * bv;
            }
            ci[j] = alpha * sum + (beta == 0 ? 0 : beta * ci[j]);
        }
        if (brow || bcol || act != MC_ACT_NONE)
            ks->epi(ci + n0, (size_t)ldc, 1, n1 - n0, brow ? brow + i : NULL, bcol ? bcol + n0 : NULL, act);
    }
}

/* Rows [r0, r0 + nr) of a reduced operand, columns [c0, c0 + kc), converted
 * into tmp (row stride kc) and packed as an R-row panel (zero padded).
 * use_fast: the kernel set's transposing packer may be used. */
static void pack_q(const mc_kset *ks, const mc_qop *o, int64_t r0, int64_t c0, int nr, int R, int kc,
                   int use_fast, float *tmp, float *dst) {
    if (o->q->type == MC_WT_F32 && !o->q->data)   /* float32 held only as its packed copy */
        mc_qmat_unpack(o->q, o->row0 + r0, nr, c0, kc, tmp, (size_t)kc);
    else
        for (int i = 0; i < nr; i++) {
            int64_t r = o->row0 + r0 + i;
            ks->cvt(o->q->type, mc_qmat_at(o->q, r, c0), kc, o->q->scale ? o->q->scale[r] : 1.0f, tmp + (size_t)i * kc);
        }
    if (use_fast)
        ks->pack_a_rows(tmp, kc, nr, R, kc, dst);
    else
        pack_a(0, tmp, kc, nr, R, kc, dst);
}

static void gemm_block(const mc_kset *ks, int ta, int tb, int m0, int m1, int n0, int n1, int k,
                       float alpha, const float *a, int lda, const mc_qop *qa, const float *b, int ldb,
                       const mc_qop *qb, float beta, float *c, int ldc, const float *brow,
                       const float *bcol, mc_act act) {
    const int MR = ks->mr, NR = ks->nr, MC = ks->mc, KC = ks->kc, NC = ks->nc;
    int has_epi = brow || bcol || act != MC_ACT_NONE;
    int kc_max = k < KC ? k : KC;
    int nc_max = (n1 - n0) < NC ? (n1 - n0) : NC;
    int mc_max = (m1 - m0) < MC ? (m1 - m0) : MC;
    float *bp = mc_scratch(MC_SCRATCH_PACK_B, (size_t)kc_max * ((nc_max + NR - 1) / NR) * NR + (size_t)MR * NR);
    float *ap = mc_scratch(MC_SCRATCH_PACK_A, (size_t)kc_max * ((mc_max + MR - 1) / MR) * MR + (size_t)MR * NR);
    float *qt = (qa || qb) ? mc_scratch(MC_SCRATCH_PACK_Q, (size_t)kc_max * (MR > NR ? MR : NR) + 64) : NULL;
    if (!bp || !ap || ((qa || qb) && !qt)) {   /* no memory for packing: the same block without it */
        gemm_block_plain(ks, ta, tb, m0, m1, n0, n1, k, alpha, a, lda, qa, b, ldb, qb, beta, c, ldc, brow, bcol,
                         act);
        return;
    }
    /* pre-packed weights (mc_qmat_pack): panels are read in place */
    const float *apk = qa ? mc_qmat_packed_for(qa->q, ks, 0) : NULL;
    const float *bpk = qb ? mc_qmat_packed_for(qb->q, ks, 1) : NULL;
    if (apk && qa->row0 % MR) apk = NULL;
    if (bpk && qb->row0 % NR) bpk = NULL;
    size_t a_rows = apk ? (size_t)(qa->q->rows + MR - 1) / MR * MR : 0;
    size_t b_rows = bpk ? (size_t)(qb->q->rows + NR - 1) / NR * NR : 0;
    float tmp[64 * 64] __attribute__((aligned(64)));
    for (int jc = n0; jc < n1; jc += NC) {
        int nc = n1 - jc < NC ? n1 - jc : NC;
        for (int pc = 0; pc < k; pc += KC) {
            int kc = k - pc < KC ? k - pc : KC;
            int last = pc + kc >= k;
            float beff = pc == 0 ? beta : 1.0f;
            const float *bblk = bpk ? bpk + (size_t)pc * b_rows + (size_t)(qb->row0 + jc) * kc : bp;
            if (!bpk && !qb && !tb && ks->pack_b_cols)   /* the whole block of panels at once */
                ks->pack_b_cols(b + (size_t)pc * ldb + jc, ldb, nc, NR, kc, bp);
            for (int jr = 0; jr < nc && !bpk && (qb || tb || !ks->pack_b_cols); jr += NR) {
                int nr = nc - jr < NR ? nc - jr : NR;
                if (qb) {
                    pack_q(ks, qb, jc + jr, pc, nr, NR, kc, ks->pack_a_rows && NR <= 16, qt, bp + (size_t)jr * kc);
                    continue;
                }
                const float *src = tb ? b + (size_t)(jc + jr) * ldb + pc : b + (size_t)pc * ldb + jc + jr;
                if (tb && ks->pack_a_rows && NR <= 16)   /* B^T rows: same transpose as packing A */
                    ks->pack_a_rows(src, ldb, nr, NR, kc, bp + (size_t)jr * kc);
                else
                    pack_b(tb, src, ldb, nr, NR, kc, bp + (size_t)jr * kc);
            }
            for (int ic = m0; ic < m1; ic += MC) {
                int mc = m1 - ic < MC ? m1 - ic : MC;
                const float *ablk = apk ? apk + (size_t)pc * a_rows + (size_t)(qa->row0 + ic) * kc : ap;
                for (int ir = 0; ir < mc && !apk; ir += MR) {
                    int mr = mc - ir < MR ? mc - ir : MR;
                    if (qa) {
                        pack_q(ks, qa, ic + ir, pc, mr, MR, kc, ks->pack_a_rows != NULL, qt, ap + (size_t)ir * kc);
                        continue;
                    }
                    const float *src = ta ? a + (size_t)pc * lda + ic + ir : a + (size_t)(ic + ir) * lda + pc;
                    if (!ta && ks->pack_a_rows)
                        ks->pack_a_rows(src, lda, mr, MR, kc, ap + (size_t)ir * kc);
                    else
                        pack_a(ta, src, lda, mr, MR, kc, ap + (size_t)ir * kc);
                }
                for (int jr = 0; jr < nc; jr += NR) {
                    int nr = nc - jr < NR ? nc - jr : NR;
                    const float *bpan = bblk + (size_t)jr * kc;
                    for (int ir = 0; ir < mc; ir += MR) {
                        int mr = mc - ir < MR ? mc - ir : MR;
                        float *ct = c + (size_t)(ic + ir) * ldc + jc + jr;
                        const float *apan = ablk + (size_t)ir * kc;
                        if (mr == MR && nr == NR) {
                            ks->ukr(kc, apan, bpan, ct, (size_t)ldc, alpha, beff);
                        } else {
                            ks->ukr(kc, apan, bpan, tmp, (size_t)NR, alpha, 0.0f);
                            for (int i = 0; i < mr; i++)
                                for (int j = 0; j < nr; j++) {
                                    float *cv = ct + (size_t)i * ldc + j;
                                    float t = tmp[i * NR + j];
                                    *cv = beff == 0 ? t : t + beff * *cv;
                                }
                        }
                        if (last && has_epi)
                            ks->epi(ct, (size_t)ldc, mr, nr, brow ? brow + ic + ir : NULL,
                                    bcol ? bcol + jc + jr : NULL, act);
                    }
                }
            }
        }
    }
}

size_t mc_qmat_packed_floats(const mc_kset *ks, int b, int64_t rows, int64_t cols) {
    int64_t R = b ? ks->nr : ks->mr;
    if (rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX) return 0;
    return (size_t)((rows + R - 1) / R * R) * (size_t)cols;   /* < 2^63: both below 2^31 */
}

void mc_qmat_pack(const mc_kset *ks, int b, const float *w, int64_t rows, int64_t cols, float *dst, mc_qmat *q) {
    const int R = b ? ks->nr : ks->mr, KC = ks->kc, k = (int)cols;
    const size_t rp = (size_t)((rows + R - 1) / R * R);
    for (int pc = 0; pc < k; pc += KC) {
        int kc = k - pc < KC ? k - pc : KC;
        for (int64_t r = 0; r < rows; r += R) {
            int nr = rows - r < R ? (int)(rows - r) : R;
            pack_a(0, w + (size_t)r * (size_t)cols + pc, k, nr, R, kc, dst + (size_t)pc * rp + (size_t)r * kc);
        }
    }
    memset(q, 0, sizeof *q);
    q->type = MC_WT_F32;
    q->rows = rows;
    q->cols = cols;
    q->data = w;
    q->packed = dst;
    q->pk_r = R;
    q->pk_kc = KC;
    q->pk_b = b;
}

/* Splits C into a tm x tn grid of chunks (whole micro-tiles) handed to nt
 * threads dynamically, so a thread that is descheduled or slow delays only
 * its current chunk.  Cost in micro-tile units: the busiest thread's compute
 * plus the redundant packing (A re-packed per column chunk, B per row chunk;
 * one packed B panel costs about two tile products). */
static void split_grid(int nt, int mt, int ntl, int *tm, int *tn) {
    double best = -1;
    int cmax = 4 * nt;
    *tm = 1, *tn = 1;
    for (int a = 1; a <= mt && a <= cmax; a++)
        for (int b = 1; b <= ntl && a * b <= cmax; b++) {
            if (a * b < nt && !(a == mt && b == ntl)) continue;
            double rounds = (double)((a * b + nt - 1) / nt);
            double w = rounds * ((mt + a - 1) / a) * (double)((ntl + b - 1) / b);
            w += ((double)mt * (b - 1) + 2.0 * ntl * (a - 1)) / nt;
            if (best < 0 || w < best - 1e-9) best = w, *tm = a, *tn = b;
        }
}

void mc_gemm_q(const mc_kset *ks, int nthreads, int ta, int tb, int m, int n, int k, float alpha,
               const float *a, int lda, const mc_qop *qa, const float *b, int ldb, const mc_qop *qb,
               float beta, float *c, int ldc, const float *brow, const float *bcol, mc_act act) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (int i = 0; i < m; i++) {
            float *ci = c + (size_t)i * ldc;
            for (int j = 0; j < n; j++) ci[j] = beta == 0 ? 0 : beta * ci[j];
            if (brow || bcol || act != MC_ACT_NONE) ks->epi(ci, (size_t)ldc, 1, n, brow ? brow + i : NULL, bcol, act);
        }
        return;
    }
    int mt = (m + ks->mr - 1) / ks->mr, ntl = (n + ks->nr - 1) / ks->nr;
    int nt = nthreads < 1 ? 1 : nthreads;
    int tm = 1, tn = 1;
    if (nt > 1) split_grid(nt, mt, ntl, &tm, &tn);
    int chunks = tm * tn;
    if (chunks <= 1 || nt <= 1) {
        gemm_block(ks, ta, tb, 0, m, 0, n, k, alpha, a, lda, qa, b, ldb, qb, beta, c, ldc, brow, bcol, act);
        return;
    }
    if (nt > chunks) nt = chunks;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int id = 0; id < chunks; id++) {
        int im = id / tn, in = id % tn;
        int m0 = (int)((long)mt * im / tm) * ks->mr, m1 = (int)((long)mt * (im + 1) / tm) * ks->mr;
        int n0 = (int)((long)ntl * in / tn) * ks->nr, n1 = (int)((long)ntl * (in + 1) / tn) * ks->nr;
        if (m1 > m) m1 = m;
        if (n1 > n) n1 = n;
        if (m0 < m1 && n0 < n1)
            gemm_block(ks, ta, tb, m0, m1, n0, n1, k, alpha, a, lda, qa, b, ldb, qb, beta, c, ldc, brow, bcol, act);
    }
}

void mc_gemm_ex(const mc_kset *ks, int nthreads, int ta, int tb, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc,
                const float *brow, const float *bcol, mc_act act) {
    mc_gemm_q(ks, nthreads, ta, tb, m, n, k, alpha, a, lda, NULL, b, ldb, NULL, beta, c, ldc, brow, bcol, act);
}

int mc_gemm_blas(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
#ifdef MC_USE_OPENBLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                k, alpha, a, lda, b, ldb, beta, c, ldc);
    return 1;
#else
    (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b;
    (void)ldb, (void)beta, (void)c, (void)ldc;
    return 0;
#endif
}

