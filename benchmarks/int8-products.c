// The AVX2 ceiling of exact int8 products: a loop of the pair windows' step (two filters' weight pairs broadcast
// against six vectors of image pairs, vpmaddwd and vpaddd: 16 exact products per pair of instructions) against
// onnxruntime's (vpmaddubsw, vpmaddwd by ones and vpaddd: 32 products per three instructions, pairs of products
// saturating at 32767), with the same registers and loads. Prints products per ns for each.
//
//   clang -O2 -o .build/int8-products benchmarks/int8-products.c && .build/int8-products
// (clang, as the kernels are built: gcc 12 spilled the exact loop's accumulators here, 41 products per ns)
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

__attribute__((target("avx2"), noinline)) static int exact(long n, const int *w, const int *b) {
    __m256i acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm256_setzero_si256();
    for (long g = 0; g < n; g++) {
        const __m256i a0 = _mm256_set1_epi32(w[(g & 63) * 2]), a1 = _mm256_set1_epi32(w[(g & 63) * 2 + 1]);
        for (int j = 0; j < 6; j++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(b + (g & 63) * 8 + 8 * j));
            acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(a0, x));
            acc[6 + j] = _mm256_add_epi32(acc[6 + j], _mm256_madd_epi16(a1, x));
        }
    }
    __m256i s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_epi32(s, acc[i]);
    return _mm256_extract_epi32(s, 0);
}

__attribute__((target("avx2"), noinline)) static int saturating(long n, const int *w, const int *b) {
    __m256i acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    for (long g = 0; g < n; g++) {
        const __m256i a0 = _mm256_set1_epi32(w[(g & 63) * 2]), a1 = _mm256_set1_epi32(w[(g & 63) * 2 + 1]);
        for (int j = 0; j < 6; j++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(b + (g & 63) * 8 + 8 * j));
            acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(_mm256_maddubs_epi16(x, a0), ones));
            acc[6 + j] = _mm256_add_epi32(acc[6 + j], _mm256_madd_epi16(_mm256_maddubs_epi16(x, a1), ones));
        }
    }
    __m256i s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_epi32(s, acc[i]);
    return _mm256_extract_epi32(s, 0);
}

int main(void) {
    static int w[256], b[4096];
    for (int i = 0; i < 4096; i++) b[i] = i * 7;
    for (int i = 0; i < 256; i++) w[i] = i;
    const long n = 20000000;
    for (int round = 0; round < 3; round++) {
        double t = now();
        int check = exact(n, w, b);
        double d = now() - t;
        printf("vpmaddwd + vpaddd (exact):                   %5.1f products per ns (%d)\n", (double)n * 12 * 16 / d / 1e9,
               check);
        t = now();
        check = saturating(n, w, b);
        d = now() - t;
        printf("vpmaddubsw + vpmaddwd + vpaddd (saturating): %5.1f products per ns (%d)\n",
               (double)n * 12 * 32 / d / 1e9, check);
    }
    return 0;
}
