/*
 * kernels_avx512.c - the AVX-512 kernel set: the same SGEMM micro-kernel as
 * the AVX2 set (gemm_ukr.h) at 14 x 32 with zmm registers; every other
 * kernel is the AVX2 one.  Compiled with AVX-512 flags; selected only when
 * mc_cpu_level() reports AVX-512 with OS support.
 */
#include "gemm.h"

#include <immintrin.h>

#define VF __m512
#define VW 16
#define UKR_MR 14
#define UKR_NAME ukr_avx512_14x32
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA _mm512_fmadd_ps
#define VMUL _mm512_mul_ps
#define VZERO _mm512_setzero_ps
#define VSET1 _mm512_set1_ps
#include "gemm_ukr.h"

int mc_kset_avx512(mc_kset *ks) {
    mc_kset_avx2(ks);
    ks->name = "avx512";
    ks->mr = 14, ks->nr = 32;
    ks->mc = 14 * 12, ks->kc = 256, ks->nc = 32 * 64;
    ks->ukr = ukr_avx512_14x32;
    return 1;
}
