#ifndef RECPIPE_KERNELS_H
#define RECPIPE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// y[k] = exp(x[k] - shift) for k < n; returns the sum of y (y may equal x).
/// A polynomial exp the compiler vectorizes, built for AVX-512, AVX2 and plain x86-64,
/// chosen at load time for the running CPU.
float recpipe_shifted_exp(float *y, const float *x, float shift, size_t n);

/// y[k] = 1 / (1 + exp(-x[k])) for k < n (y may equal x), with the same exp and the same
/// per-CPU builds as recpipe_shifted_exp.
void recpipe_sigmoid(float *y, const float *x, size_t n);

/// The k greatest values of x[0..<n] (equal values: the lower index first; -inf and NaN are
/// never chosen), written best first to idx and val (room for k each); returns how many
/// (fewer than k when x holds fewer choosable values).
size_t recpipe_top_k(const float *x, size_t n, size_t k, int32_t *idx, float *val);

#endif
