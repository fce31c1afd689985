/* Vector kernels with runtime dispatch: portable scalar, AVX2+FMA, AVX-512.
 *
 * Float dots are computed in one canonical order in every kernel, so they are bit-identical:
 * 16 lanes, lane j accumulating element d + j of every 16-element block with a fused
 * multiply-add (fmaf in the scalar path: correctly rounded, exactly what the vector FMA does),
 * then the lanes reduced by a fixed tree: s[j] = a[j] + a[j+8], t[j] = s[j] + s[j+4],
 * u[j] = t[j] + t[j+2], result = u[0] + u[1]. AVX2 holds the 16 lanes in two registers, AVX-512
 * in one. int8 dots are exact int32 sums, identical in any order.
 *
 * The int8 kernels prefetch four rows ahead (prefetches never fault, so reading past the last
 * row is harmless): the hardware prefetcher alone left the int8 scan at ~60 % of DRAM
 * bandwidth.
 *
 * The SIMD functions carry function-level target attributes and are only called after
 * __builtin_cpu_supports says the CPU has the features, so the build stays portable. */
#include "knowledge/kn.h"

#include <rex/rex.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define REX_KN_X86 1
#include <immintrin.h>
#endif

static float reduce16(const float *a) {
    float s[8], t[4], u[2];
    for (int j = 0; j < 8; j++)
        s[j] = a[j] + a[j + 8];
    for (int j = 0; j < 4; j++)
        t[j] = s[j] + s[j + 4];
    for (int j = 0; j < 2; j++)
        u[j] = t[j] + t[j + 2];
    return u[0] + u[1];
}

static void dot_f32_scalar(const float *q, const float *rows, size_t n, size_t dims, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *r = rows + i * dims;
        float a[16] = {0};
        for (size_t d = 0; d < dims; d += 16)
            for (int j = 0; j < 16; j++)
                a[j] = fmaf(r[d + j], q[d + j], a[j]);
        out[i] = reduce16(a);
    }
}

static void dot_i8_scalar(const int8_t *q, const int8_t *rows, size_t n, size_t dims,
                          int32_t *out) {
    for (size_t i = 0; i < n; i++) {
        const int8_t *r = rows + i * dims;
        int32_t acc = 0;
        for (size_t d = 0; d < dims; d++)
            acc += (int32_t)r[d] * q[d];
        out[i] = acc;
    }
}

#ifdef REX_KN_X86
__attribute__((target("avx2,fma"))) static inline float reduce_avx2(__m256 lo, __m256 hi) {
    __m256 s = _mm256_add_ps(lo, hi);
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));
    __m128 r = _mm_add_ss(u, _mm_shuffle_ps(u, u, 1));
    return _mm_cvtss_f32(r);
}

__attribute__((target("avx2,fma"))) static void dot_f32_avx2(const float *q, const float *rows,
                                                             size_t n, size_t dims, float *out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *r0 = rows + i * dims, *r1 = r0 + dims, *r2 = r1 + dims, *r3 = r2 + dims;
        __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0,
               b3 = a0;
        for (size_t d = 0; d < dims; d += 16) {
            __m256 ql = _mm256_loadu_ps(q + d), qh = _mm256_loadu_ps(q + d + 8);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + d), ql, a0);
            b0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + d + 8), qh, b0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + d), ql, a1);
            b1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + d + 8), qh, b1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + d), ql, a2);
            b2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + d + 8), qh, b2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + d), ql, a3);
            b3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + d + 8), qh, b3);
        }
        out[i] = reduce_avx2(a0, b0);
        out[i + 1] = reduce_avx2(a1, b1);
        out[i + 2] = reduce_avx2(a2, b2);
        out[i + 3] = reduce_avx2(a3, b3);
    }
    for (; i < n; i++) {
        const float *r = rows + i * dims;
        __m256 a = _mm256_setzero_ps(), b = a;
        for (size_t d = 0; d < dims; d += 16) {
            a = _mm256_fmadd_ps(_mm256_loadu_ps(r + d), _mm256_loadu_ps(q + d), a);
            b = _mm256_fmadd_ps(_mm256_loadu_ps(r + d + 8), _mm256_loadu_ps(q + d + 8), b);
        }
        out[i] = reduce_avx2(a, b);
    }
}

__attribute__((target("avx2"))) static inline int32_t hsum_i32_avx2(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* |r| * (q * sign r) pairs fit int16 because values are within [-127, 127]. */
__attribute__((target("avx2"))) static void dot_i8_avx2(const int8_t *q, const int8_t *rows,
                                                        size_t n, size_t dims, int32_t *out) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t i = 0; i < n; i++) {
        const int8_t *r = rows + i * dims;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
        for (size_t d = 0; d < dims; d += 64) {
            _mm_prefetch((const char *)(r + 4 * dims + d), _MM_HINT_T0);
            __m256i c0 = _mm256_loadu_si256((const __m256i *)(r + d));
            __m256i c1 = _mm256_loadu_si256((const __m256i *)(r + d + 32));
            __m256i q0 = _mm256_loadu_si256((const __m256i *)(q + d));
            __m256i q1 = _mm256_loadu_si256((const __m256i *)(q + d + 32));
            __m256i p0 = _mm256_maddubs_epi16(_mm256_sign_epi8(c0, c0), _mm256_sign_epi8(q0, c0));
            __m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(c1, c1), _mm256_sign_epi8(q1, c1));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(p0, ones));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(p1, ones));
        }
        out[i] = hsum_i32_avx2(_mm256_add_epi32(acc0, acc1));
    }
}

__attribute__((target("avx512f,avx2,fma"))) static inline float reduce_avx512(__m512 a) {
    __m256 lo = _mm512_castps512_ps256(a);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    return reduce_avx2(lo, hi);
}

__attribute__((target("avx512f,avx2,fma"))) static void
dot_f32_avx512(const float *q, const float *rows, size_t n, size_t dims, float *out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *r0 = rows + i * dims, *r1 = r0 + dims, *r2 = r1 + dims, *r3 = r2 + dims;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t d = 0; d < dims; d += 16) {
            __m512 qv = _mm512_loadu_ps(q + d);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + d), qv, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(r1 + d), qv, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(r2 + d), qv, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(r3 + d), qv, a3);
        }
        out[i] = reduce_avx512(a0);
        out[i + 1] = reduce_avx512(a1);
        out[i + 2] = reduce_avx512(a2);
        out[i + 3] = reduce_avx512(a3);
    }
    for (; i < n; i++) {
        const float *r = rows + i * dims;
        __m512 a = _mm512_setzero_ps();
        for (size_t d = 0; d < dims; d += 16)
            a = _mm512_fmadd_ps(_mm512_loadu_ps(r + d), _mm512_loadu_ps(q + d), a);
        out[i] = reduce_avx512(a);
    }
}

/* Four rows at a time (four memory streams). Products |c| * (q * sign c) summed exactly. */
__attribute__((target("avx512f,avx512bw,avx2"))) static void
dot_i8_avx512(const int8_t *q, const int8_t *rows, size_t n, size_t dims, int32_t *out) {
    const __m512i ones = _mm512_set1_epi16(1), zero = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const int8_t *r = rows + i * dims;
        __m512i acc[4] = {zero, zero, zero, zero};
        for (size_t d = 0; d < dims; d += 64) {
            __m512i qv = _mm512_loadu_si512((const void *)(q + d));
            for (int k = 0; k < 4; k++) {
                _mm_prefetch((const char *)(r + (size_t)(k + 4) * dims + d), _MM_HINT_T0);
                __m512i c = _mm512_loadu_si512((const void *)(r + (size_t)k * dims + d));
                __m512i s = _mm512_mask_sub_epi8(qv, _mm512_movepi8_mask(c), zero, qv);
                __m512i p = _mm512_maddubs_epi16(_mm512_abs_epi8(c), s);
                acc[k] = _mm512_add_epi32(acc[k], _mm512_madd_epi16(p, ones));
            }
        }
        for (int k = 0; k < 4; k++)
            out[i + (size_t)k] = _mm512_reduce_add_epi32(acc[k]);
    }
    if (i < n)
        dot_i8_avx2(q, rows + i * dims, n - i, dims, out + i);
}

/* The same with AVX-512 VNNI: one vpdpbusd replaces maddubs + madd + add. */
__attribute__((target("avx512f,avx512bw,avx512vnni,avx2"))) static void
dot_i8_vnni(const int8_t *q, const int8_t *rows, size_t n, size_t dims, int32_t *out) {
    const __m512i zero = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const int8_t *r = rows + i * dims;
        __m512i acc[4] = {zero, zero, zero, zero};
        for (size_t d = 0; d < dims; d += 64) {
            __m512i qv = _mm512_loadu_si512((const void *)(q + d));
            for (int k = 0; k < 4; k++) {
                /* the next four rows, ahead of the hardware prefetcher */
                _mm_prefetch((const char *)(r + (size_t)(k + 4) * dims + d), _MM_HINT_T0);
                __m512i c = _mm512_loadu_si512((const void *)(r + (size_t)k * dims + d));
                __m512i s = _mm512_mask_sub_epi8(qv, _mm512_movepi8_mask(c), zero, qv);
                acc[k] = _mm512_dpbusd_epi32(acc[k], _mm512_abs_epi8(c), s);
            }
        }
        for (int k = 0; k < 4; k++)
            out[i + (size_t)k] = _mm512_reduce_add_epi32(acc[k]);
    }
    if (i < n)
        dot_i8_avx2(q, rows + i * dims, n - i, dims, out + i);
}
#endif

static int detect_best(void) {
#ifdef REX_KN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return REX_KN_KERNEL_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return REX_KN_KERNEL_AVX2;
#endif
    return REX_KN_KERNEL_SCALAR;
}

int rex_kn_kernel_best(void) {
    static int best; /* 0 = not yet detected; a race only repeats the detection */
    int b = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (!b) {
        b = detect_best();
        __atomic_store_n(&best, b, __ATOMIC_RELAXED);
    }
    return b;
}

int rex__kn_kernel_resolve(int kernel) {
    int best = rex_kn_kernel_best();
    if (kernel == REX_KN_KERNEL_AUTO || kernel > best)
        return best;
    if (kernel < REX_KN_KERNEL_SCALAR)
        return REX_KN_KERNEL_SCALAR;
    return kernel;
}

const char *rex_kn_kernel_name(int kernel) {
    switch (kernel) {
    case REX_KN_KERNEL_SCALAR:
        return "scalar";
    case REX_KN_KERNEL_AVX2:
        return "avx2";
    case REX_KN_KERNEL_AVX512:
        return "avx512";
    default:
        return "auto";
    }
}

rex__kn_dot_f32_fn rex__kn_dot_f32_kernel(int kernel) {
    switch (rex__kn_kernel_resolve(kernel)) {
#ifdef REX_KN_X86
    case REX_KN_KERNEL_AVX512:
        return dot_f32_avx512;
    case REX_KN_KERNEL_AVX2:
        return dot_f32_avx2;
#endif
    default:
        return dot_f32_scalar;
    }
}

#ifdef REX_KN_X86
static int has_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && !getenv("REX_KN_NO_VNNI");
}
#endif

rex__kn_dot_i8_fn rex__kn_dot_i8_kernel(int kernel) {
    switch (rex__kn_kernel_resolve(kernel)) {
#ifdef REX_KN_X86
    case REX_KN_KERNEL_AVX512:
        return has_vnni() ? dot_i8_vnni : dot_i8_avx512;
    case REX_KN_KERNEL_AVX2:
        return dot_i8_avx2;
#endif
    default:
        return dot_i8_scalar;
    }
}

float rex__kn_quantize(const float *v, size_t dims, int8_t *q, float *err) {
    float m = 0;
    for (size_t i = 0; i < dims; i++)
        m = fmaxf(m, fabsf(v[i]));
    if (m == 0) {
        memset(q, 0, dims);
        *err = 0;
        return 0;
    }
    float s = m / 127.0f;
    double e = 0;
    for (size_t i = 0; i < dims; i++) {
        long k = lrintf(v[i] / s);
        if (k > 127)
            k = 127;
        if (k < -127)
            k = -127;
        q[i] = (int8_t)k;
        double d = (double)v[i] - (double)s * (double)k;
        e += d * d;
    }
    /* an upper bound: inflate for the rounding of the sum and the square root */
    *err = (float)(sqrt(e) * (1 + 1e-6) + 1e-9);
    return s;
}
