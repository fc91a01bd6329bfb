/*
 * core/cpu.h - run-time CPU feature detection.
 */
#ifndef MC_CORE_CPU_H
#define MC_CORE_CPU_H

/* CPU features: 2 = AVX-512F/BW/VL/DQ usable, 1 = AVX2+FMA usable, 0 = neither;
 * on AArch64 always 1 (NEON, part of the base ISA). */
int mc_cpu_level(void);

#endif /* MC_CORE_CPU_H */
