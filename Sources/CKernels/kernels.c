#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

#define ALWAYS_INLINE __attribute__((always_inline)) inline

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

ALWAYS_INLINE static float shifted_exp_body(float *y, const float *x, float shift, size_t n) {
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

ALWAYS_INLINE static int sigmoid_body(float *y, const float *x, size_t n) {
    #pragma omp simd
    for (size_t k = 0; k < n; k++) {
        y[k] = 1.0f / (1.0f + exp_approx(-x[k]));
    }
    return 0;
}

// The selection heap keeps its worst entry at the root: the lowest value, and among equal
// values the highest index (which a later element of the same value never displaces).
static inline int heap_worse(const float *val, const int32_t *idx, size_t a, size_t b) {
    return val[a] < val[b] || (val[a] == val[b] && idx[a] > idx[b]);
}

static inline void heap_swap(float *val, int32_t *idx, size_t a, size_t b) {
    float v = val[a]; val[a] = val[b]; val[b] = v;
    int32_t i = idx[a]; idx[a] = idx[b]; idx[b] = i;
}

static inline void heap_sift_down(float *val, int32_t *idx, size_t size) {
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < size && heap_worse(val, idx, l, m)) m = l;
        if (r < size && heap_worse(val, idx, r, m)) m = r;
        if (m == i) return;
        heap_swap(val, idx, i, m);
        i = m;
    }
}

static inline void heap_sift_up(float *val, int32_t *idx, size_t c) {
    while (c > 0) {
        size_t p = (c - 1) / 2;
        if (!heap_worse(val, idx, c, p)) return;
        heap_swap(val, idx, c, p);
        c = p;
    }
}

// Whether any of the 16 entries at x is above t: one vector comparison where the CPU has
// 16-float vectors.
static inline int any_above16(const float *x, float t) {
    int any = 0;
    #pragma omp simd reduction(| : any)
    for (size_t j = 0; j < 16; j++) any |= x[j] > t;
    return any;
}

// The heap selection over x[0..<n]; ids (when given) name the entries instead of their
// positions and must rise with position, as the tie rule needs. Once the heap is full,
// almost every entry is at or below its worst value: blocks of 16 are tested against it with
// one vector comparison, and only a block holding a greater entry is walked one by one.
static inline size_t heap_select(const float *x, const int32_t *ids, size_t n, size_t k,
                                 int32_t *idx, float *val) {
    size_t size = 0, i = 0;
    for (; i < n && size < k; i++) {
        float s = x[i];
        if (!(s > -__builtin_inff())) continue;  // -inf and NaN are never chosen
        val[size] = s; idx[size] = ids ? ids[i] : (int32_t)i;
        heap_sift_up(val, idx, size);
        size++;
    }
    if (size < k) return size;
    float threshold = val[0];
    for (; i < n; ) {
        if (i + 16 <= n && !any_above16(x + i, threshold)) { i += 16; continue; }
        size_t end = i + 16 <= n ? i + 16 : n;
        for (; i < end; i++) {
            if (x[i] > threshold) {
                val[0] = x[i]; idx[0] = ids ? ids[i] : (int32_t)i;
                heap_sift_down(val, idx, size);
                threshold = val[0];
            }
        }
    }
    return size;
}

// The entries of x above t, in position order, into cand_val/cand_id (room for cap);
// returns how many, or cap + 1 when they do not fit.
static inline size_t above(const float *x, size_t n, float t, float *cand_val, int32_t *cand_id, size_t cap) {
    size_t count = 0, i = 0;
    for (; i < n; ) {
        if (i + 16 <= n && !any_above16(x + i, t)) { i += 16; continue; }
        size_t end = i + 16 <= n ? i + 16 : n;
        for (; i < end; i++) {
            if (x[i] > t) {
                if (count == cap) return cap + 1;
                cand_val[count] = x[i]; cand_id[count] = (int32_t)i;
                count++;
            }
        }
    }
    return count;
}

// How many entries are selected over a long row depends on its order: a row that rises
// with position replaces the heap's worst entry at almost every step. Long rows therefore
// first take a threshold from every 8th entry (the k/4-th best of them, about 2k entries of
// the row above it) and select among the few entries above it, in position order; when
// fewer than k lie above it (or too many), the plain selection runs over the whole row.
// Both give the same list: all of the k best lie above the threshold whenever k entries do.
ALWAYS_INLINE static size_t top_k_body(const float *x, size_t n, size_t k, int32_t *idx, float *val) {
    if (k == 0) return 0;
    size_t size = 0;
    int done = 0;
    if (k >= 8 && n / 64 >= k) {
        size_t stride = 8, m = n / stride, r = k / 4, cap = 8 * k;
        float *buffer = malloc(sizeof(float) * (m + r + cap));
        int32_t *ids = malloc(sizeof(int32_t) * (r + cap));
        if (buffer && ids) {
            float *sample = buffer, *sample_val = buffer + m, *cand_val = buffer + m + r;
            int32_t *sample_id = ids, *cand_id = ids + r;
            for (size_t j = 0; j < m; j++) sample[j] = x[j * stride];
            if (heap_select(sample, NULL, m, r, sample_id, sample_val) == r) {
                size_t count = above(x, n, sample_val[0], cand_val, cand_id, cap);
                if (count >= k && count <= cap) {
                    size = heap_select(cand_val, cand_id, count, k, idx, val);
                    done = 1;
                }
            }
        }
        free(buffer);
        free(ids);
    }
    if (!done) size = heap_select(x, NULL, n, k, idx, val);
    // Heap sort: each pop moves the worst remaining entry behind the heap, so the array
    // ends best first.
    for (size_t end = size; end > 1; end--) {
        heap_swap(val, idx, 0, end - 1);
        heap_sift_down(val, idx, end - 1);
    }
    return size;
}

// Adam's update of n parameters (see recpipe_adam in kernels.h).
ALWAYS_INLINE static int adam_body(float *p, float *g, float *m, float *v, size_t n, float b1, float b2, float rate,
                                   float epsilon) {
    #pragma omp simd
    for (size_t k = 0; k < n; k++) {
        float gk = g[k];
        float mk = b1 * m[k] + (1.0f - b1) * gk;
        float vk = b2 * v[k] + (1.0f - b2) * gk * gk;
        m[k] = mk;
        v[k] = vk;
        p[k] -= rate * mk / (__builtin_sqrtf(vk) + epsilon);
        g[k] = 0.0f;
    }
    return 0;
}

// Each kernel is built three times: for AVX-512, for AVX2 with FMA, and for plain x86-64.
// One variant serves the process, chosen on the first call: the best the CPU has, or the
// one RECPIPE_KERNELS names (avx512, avx2, default) where the CPU has it, so that a machine
// with AVX-512 can run the code an AVX2-only machine runs. Multiply-adds are not fused
// (-ffp-contract=off), so every variant rounds each element's arithmetic the same way; only
// the order of a reduction's partial sums differs with the vector width.
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
static int cpu_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
}
#else
#define TARGET_AVX512
#define TARGET_AVX2
static int cpu_level(void) { return 0; }
#endif

static const char *const level_names[] = {"default", "avx2", "avx512"};
static int requested = -2;  // -2: not read yet; -1: none or not recognised
static int chosen = -1;

int recpipe_kernels_level(void) {
    int level = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (level >= 0) return level;
    int best = cpu_level(), wanted = -1;
    const char *name = getenv("RECPIPE_KERNELS");
    if (name && *name) {
        for (int k = 0; k < 3; k++) if (strcmp(name, level_names[k]) == 0) wanted = k;
    }
    level = wanted >= 0 && wanted <= best ? wanted : best;
    __atomic_store_n(&requested, wanted, __ATOMIC_RELAXED);
    __atomic_store_n(&chosen, level, __ATOMIC_RELAXED);
    return level;
}

const char *recpipe_kernels_name(int level) { return level >= 0 && level < 3 ? level_names[level] : "unknown"; }

int recpipe_kernels_cpu_level(void) { return cpu_level(); }

#define VARIANTS(ret, name, params, args)                                                     \
    TARGET_AVX512 static ret name##_avx512 params { return name##_body args; }              \
    TARGET_AVX2 static ret name##_avx2 params { return name##_body args; }                  \
    static ret name##_default params { return name##_body args; }                           \
    static ret name##_at(int level, FLAT params) {                                           \
        level = level < 0 || level > cpu_level() ? recpipe_kernels_level() : level;          \
        return level == 2 ? name##_avx512 args : level == 1 ? name##_avx2 args : name##_default args; \
    }
#define FLAT(...) __VA_ARGS__

VARIANTS(float, shifted_exp, (float *y, const float *x, float shift, size_t n), (y, x, shift, n))
VARIANTS(int, sigmoid, (float *y, const float *x, size_t n), (y, x, n))
VARIANTS(size_t, top_k, (const float *x, size_t n, size_t k, int32_t *idx, float *val), (x, n, k, idx, val))
VARIANTS(int, adam, (float *p, float *g, float *m, float *v, size_t n, float b1, float b2, float rate, float epsilon),
         (p, g, m, v, n, b1, b2, rate, epsilon))

float recpipe_shifted_exp(float *y, const float *x, float shift, size_t n) { return shifted_exp_at(-1, y, x, shift, n); }
void recpipe_sigmoid(float *y, const float *x, size_t n) { sigmoid_at(-1, y, x, n); }
size_t recpipe_top_k(const float *x, size_t n, size_t k, int32_t *idx, float *val) { return top_k_at(-1, x, n, k, idx, val); }
void recpipe_adam(float *p, float *g, float *m, float *v, size_t n, float b1, float b2, float rate, float epsilon) {
    adam_at(-1, p, g, m, v, n, b1, b2, rate, epsilon);
}

int recpipe_kernels_requested(void) {
    recpipe_kernels_level();
    return __atomic_load_n(&requested, __ATOMIC_RELAXED);
}

float recpipe_shifted_exp_at(int level, float *y, const float *x, float shift, size_t n) { return shifted_exp_at(level, y, x, shift, n); }
void recpipe_sigmoid_at(int level, float *y, const float *x, size_t n) { sigmoid_at(level, y, x, n); }
size_t recpipe_top_k_at(int level, const float *x, size_t n, size_t k, int32_t *idx, float *val) {
    return top_k_at(level, x, n, k, idx, val);
}
void recpipe_adam_at(int level, float *p, float *g, float *m, float *v, size_t n, float b1, float b2, float rate, float epsilon) {
    adam_at(level, p, g, m, v, n, b1, b2, rate, epsilon);
}
