#ifndef RECPIPE_KERNELS_H
#define RECPIPE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// The kernels below are built for AVX-512, for AVX2 with FMA and for plain x86-64; one
/// variant serves the process: the best the CPU has, or the one the RECPIPE_KERNELS
/// environment variable names (avx512, avx2, default) where the CPU has it.
/// 2: AVX-512, 1: AVX2, 0: default.
int recpipe_kernels_level(void);
/// The best variant the CPU can run.
int recpipe_kernels_cpu_level(void);
/// The variant RECPIPE_KERNELS names; -1 when it is unset or names none.
int recpipe_kernels_requested(void);
/// "avx512", "avx2" or "default".
const char *recpipe_kernels_name(int level);

/// y[k] = exp(x[k] - shift) for k < n; returns the sum of y (y may equal x).
/// A polynomial exp the compiler vectorizes.
float recpipe_shifted_exp(float *y, const float *x, float shift, size_t n);

/// y[k] = 1 / (1 + exp(-x[k])) for k < n (y may equal x), with the same exp and the same
/// per-CPU builds as recpipe_shifted_exp.
void recpipe_sigmoid(float *y, const float *x, size_t n);

/// The k greatest values of x[0..<n] (equal values: the lower index first; -inf and NaN are
/// never chosen), written best first to idx and val (room for k each); returns how many
/// (fewer than k when x holds fewer choosable values).
size_t recpipe_top_k(const float *x, size_t n, size_t k, int32_t *idx, float *val);

/// One Adam step over n parameters: m = b1·m + (1 − b1)·g, v = b2·v + (1 − b2)·g², then
/// p −= rate·m / (√v + epsilon), and g set to zero (ready for the next accumulation).
void recpipe_adam(float *p, float *g, float *m, float *v, size_t n, float b1, float b2, float rate, float epsilon);

/// The same kernels in a given variant (the process's own where the CPU lacks it), for tests
/// that compare the variants.
float recpipe_shifted_exp_at(int level, float *y, const float *x, float shift, size_t n);
void recpipe_sigmoid_at(int level, float *y, const float *x, size_t n);
size_t recpipe_top_k_at(int level, const float *x, size_t n, size_t k, int32_t *idx, float *val);
void recpipe_adam_at(int level, float *p, float *g, float *m, float *v, size_t n, float b1, float b2, float rate, float epsilon);

#endif
