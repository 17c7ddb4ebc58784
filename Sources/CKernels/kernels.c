#include <stdint.h>
#include <string.h>
#include "kernels.h"

// Range reduction x = n·ln2 + r with ln2 split in two parts, a degree-6 polynomial for e^r
// (the coefficients of Cephes' expf), then 2^n through the exponent bits. Rounding to the
// nearest integer by adding and removing 1.5·2^23 keeps the loop free of calls, so it
// vectorizes. Relative error about 2e-7 on [-87, 88]; inputs outside are clamped.
static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float shifted = x * 1.44269504f + 12582912.0f;
    float n = shifted - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    bits = ((bits - 0x4B400000u) + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
float recpipe_shifted_exp(float *y, const float *x, float shift, size_t n) {
    float sum = 0.0f;
    // Only this reduction may be reordered (lane-wise partial sums); nothing else is.
    #pragma omp simd reduction(+ : sum)
    for (size_t k = 0; k < n; k++) {
        float e = exp_approx(x[k] - shift);
        y[k] = e;
        sum += e;
    }
    return sum;
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void recpipe_sigmoid(float *y, const float *x, size_t n) {
    #pragma omp simd
    for (size_t k = 0; k < n; k++) {
        y[k] = 1.0f / (1.0f + exp_approx(-x[k]));
    }
}
