/*
 * kernels/set_avx512.c - the AVX-512 kernel set: the same SGEMM micro-kernel as
 * the AVX2 set (gemm_ukr.h) at 14 x 32 with zmm registers, and the same
 * vector math / bias + activation epilogue (vec.h) at 16 lanes;
 * every other kernel is the AVX2 one.  Compiled with AVX-512 flags; selected only when
 * mc_cpu_level() reports AVX-512 with OS support.
 */
#include "kernels/set_avx512.h"
#include "kernels/qmat.h"
#include "kernels/set_avx2.h"
#include "kernels/set_portable.h"

#ifdef MC_EMULATE_AVX512   /* test build: portable C lanes (emu512.h) */
#include "kernels/emu512.h"
#else
#include <immintrin.h>
#endif

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
#include "kernels/gemm_ukr.h"

/* ---- vector math and epilogue (vec.h) at 16 lanes ---- */
#define VM __mmask16
#define VTM __mmask16
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VDIV _mm512_div_ps
#define VMAX _mm512_max_ps
#define VMIN _mm512_min_ps
#define VFNMA _mm512_fnmadd_ps
#define VABS _mm512_abs_ps
#define VSHL23(v) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(v), 23))
/* integer min / max / add on the float bits (v_gelu's clamps, 2^n scaling) */
#define VMINI(a, b) _mm512_castsi512_ps(_mm512_min_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VMINU(a, b) _mm512_castsi512_ps(_mm512_min_epu32(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VMAXI(a, b) _mm512_castsi512_ps(_mm512_max_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VADDI(a, b) _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VCMP_LT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define VCMP_GE(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ)
#define VCMP_UNORD(a) _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q)
#define VSEL(m, f, t) _mm512_mask_blend_ps(m, f, t)   /* m ? t : f */
#define VTAIL(rem) ((__mmask16)((1u << (rem)) - 1u))
#define VLOAD_TAIL(p, m) _mm512_maskz_loadu_ps(m, p)
#define VSTORE_TAIL(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define EPI_NAME epi_avx512
#define ACT_NAME act_avx512
#define GEMV_NAME gemv_avx512
#define VHSUM _mm512_reduce_add_ps
#include "kernels/vec.h"

int mc_kset_avx512(mc_kset *ks) {
    mc_kset_avx2(ks);
    ks->name = "avx512";
    ks->mr = 14, ks->nr = 32;
    ks->mc = 14 * 12, ks->kc = 256, ks->nc = 32 * 64;
    ks->ukr = ukr_avx512_14x32;
    ks->epi = epi_avx512;
    ks->act = act_avx512;
    ks->gemv = gemv_avx512;
    return 1;
}
