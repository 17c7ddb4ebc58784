#ifndef RECPIPE_KERNELS_H
#define RECPIPE_KERNELS_H

#include <stddef.h>

/// y[k] = exp(x[k] - shift) for k < n; returns the sum of y (y may equal x).
/// A polynomial exp the compiler vectorizes, built for AVX-512, AVX2 and plain x86-64,
/// chosen at load time for the running CPU.
float recpipe_shifted_exp(float *y, const float *x, float shift, size_t n);

/// y[k] = 1 / (1 + exp(-x[k])) for k < n (y may equal x), with the same exp and the same
/// per-CPU builds as recpipe_shifted_exp.
void recpipe_sigmoid(float *y, const float *x, size_t n);

#endif
