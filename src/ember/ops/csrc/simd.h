/* GCC's vector extension for the direct convolutions (convdirect.c, convchan.c): 32-byte
 * vectors of 8 floats or 4 doubles (and integer lanes of the same widths, for masks), unaligned
 * loads through memcpy, broadcasts. Plain C for any target GCC supports; built with
 * -march=native they become AVX2 instructions here. */
#ifndef EMBER_SIMD_H
#define EMBER_SIMD_H
#include <stdint.h>
#include <string.h>

typedef float vecf __attribute__((vector_size(32)));
typedef double vecd __attribute__((vector_size(32)));
typedef int32_t veci __attribute__((vector_size(32)));
typedef int64_t vecl __attribute__((vector_size(32)));

static inline vecf loadv_f(const float *p)
{
    vecf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline vecd loadv_d(const double *p)
{
    vecd v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* every lane *p: one broadcast load (`(V){0} + x` adds zero first, which is not a no-op for
 * -0.0, and costs an add and a register shuffle per use) */
static inline vecf splat_f(const float *p)
{
    float v = *p;
    return (vecf){v, v, v, v, v, v, v, v};
}

static inline vecd splat_d(const double *p)
{
    double v = *p;
    return (vecd){v, v, v, v};
}

#endif
