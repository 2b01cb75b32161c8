/*
 * Batch HMAC-SHA-256 for PII masking: one call hashes a whole Arrow binary array (int32 offsets
 * + data) and writes 64 lowercase hex characters a value, equal to Python's
 * hmac.new(key, value, hashlib.sha256).hexdigest().
 *
 * Why native: the same work in CPython costs about a microsecond a value (two hashlib objects a
 * value), which made masking the largest part of ingestion. Here a value costs two SHA-256
 * compressions (the key's inner and outer pad states are primed once), done with the CPU's
 * SHA instructions where it has them (x86 SHA-NI, Armv8 SHA2: every Graviton), else portable C.
 * The caller (lambdas/preprocess/native_hmac.py, through ctypes) releases the GIL for the call.
 *
 * No allocation, no global state but the compress function chosen once, no libc beyond
 * memcpy/memset (and getauxval on Linux/Arm to detect SHA2). Built by infra/native.py.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define SLUICE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#elif defined(__aarch64__)
#define SLUICE_ARM 1
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_SHA2
#define HWCAP_SHA2 (1 << 6)
#endif
#endif
#endif

#define EXPORT __attribute__((visibility("default")))

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

typedef void (*compress_fn)(uint32_t state[8], const uint8_t *blocks, size_t nblocks);

/* ------------------------------------------------------------------------------ portable */
static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void compress_portable(uint32_t st[8], const uint8_t *p, size_t nblocks) {
    for (; nblocks; nblocks--, p += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; i++) w[i] = load_be32(p + 4 * i);
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
        uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                          K[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        st[0] += a;
        st[1] += b;
        st[2] += c;
        st[3] += d;
        st[4] += e;
        st[5] += f;
        st[6] += g;
        st[7] += h;
    }
}

/* ------------------------------------------------------------------------- x86 SHA-NI */
#ifdef SLUICE_X86
__attribute__((target("sha,sse4.1,ssse3"))) static void compress_x86(uint32_t st[8],
                                                                     const uint8_t *p,
                                                                     size_t nblocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[0]), 0xB1); /* CDAB */
    __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[4]), 0x1B);  /* EFGH */
    __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);                                        /* ABEF */
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);                                             /* CDGH */
    for (; nblocks; nblocks--, p += 64) {
        const __m128i abef = s0, cdgh = s1;
        __m128i m[4];
        for (int g = 0; g < 16; g++) {
            __m128i x;
            if (g < 4) {
                x = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
            } else { /* m[g&3] already holds msg1(W[t-16], W[t-15]) */
                x = _mm_add_epi32(m[g & 3], _mm_alignr_epi8(m[(g - 1) & 3], m[(g - 2) & 3], 4));
                x = _mm_sha256msg2_epu32(x, m[(g - 1) & 3]);
            }
            m[g & 3] = x;
            __m128i wk = _mm_add_epi32(x, _mm_loadu_si128((const __m128i *)&K[4 * g]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, wk);
            s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(wk, 0x0E));
            if (g >= 3 && g < 15) /* prepare group g+1 from groups g-3 and g-2 */
                m[(g + 1) & 3] = _mm_sha256msg1_epu32(m[(g + 1) & 3], m[(g + 2) & 3]);
        }
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
    }
    tmp = _mm_shuffle_epi32(s0, 0x1B);                                  /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);                                   /* DCHG */
    _mm_storeu_si128((__m128i *)&st[0], _mm_blend_epi16(tmp, s1, 0xF0)); /* DCBA */
    _mm_storeu_si128((__m128i *)&st[4], _mm_alignr_epi8(s1, tmp, 8));   /* HGFE */
}

static int x86_has_sha(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 19)) || !(c & (1u << 9))) return 0; /* SSE4.1, SSSE3 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 29) & 1; /* SHA */
}
#endif

/* -------------------------------------------------------------------------- Armv8 SHA2 */
#ifdef SLUICE_ARM
__attribute__((target("sha2"))) static void compress_arm(uint32_t st[8], const uint8_t *p,
                                                         size_t nblocks) {
    uint32x4_t s0 = vld1q_u32(&st[0]), s1 = vld1q_u32(&st[4]);
    for (; nblocks; nblocks--, p += 64) {
        const uint32x4_t abcd = s0, efgh = s1;
        uint32x4_t m[4];
        for (int g = 0; g < 16; g++) {
            uint32x4_t x;
            if (g < 4) {
                x = vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p + 16 * g)));
            } else {
                x = vsha256su1q_u32(vsha256su0q_u32(m[g & 3], m[(g + 1) & 3]), m[(g + 2) & 3],
                                    m[(g + 3) & 3]);
            }
            m[g & 3] = x;
            uint32x4_t wk = vaddq_u32(x, vld1q_u32(&K[4 * g]));
            uint32x4_t prev = s0;
            s0 = vsha256hq_u32(s0, s1, wk);
            s1 = vsha256h2q_u32(s1, prev, wk);
        }
        s0 = vaddq_u32(s0, abcd);
        s1 = vaddq_u32(s1, efgh);
    }
    vst1q_u32(&st[0], s0);
    vst1q_u32(&st[4], s1);
}

static int arm_has_sha2(void) {
#if defined(__APPLE__)
    return 1; /* every Apple arm64 CPU */
#elif defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_SHA2) != 0;
#else
    return 0;
#endif
}
#endif

/* ----------------------------------------------------------------------------- dispatch */
static compress_fn best_compress(int *impl) {
#ifdef SLUICE_X86
    if (x86_has_sha()) {
        *impl = 1;
        return compress_x86;
    }
#endif
#ifdef SLUICE_ARM
    if (arm_has_sha2()) {
        *impl = 2;
        return compress_arm;
    }
#endif
    *impl = 0;
    return compress_portable;
}

/* 0 = portable C, 1 = x86 SHA-NI, 2 = Armv8 SHA2; with portable != 0, always portable C. */
EXPORT int sluice_hmac_impl(int portable) {
    int impl = 0;
    if (!portable) best_compress(&impl);
    return impl;
}

/* Finish a SHA-256 over `len` remaining bytes of a message of `total` bytes. */
static void finish(compress_fn f, uint32_t st[8], const uint8_t *m, size_t len, uint64_t total) {
    size_t full = len / 64;
    if (full) f(st, m, full);
    uint8_t buf[128];
    size_t rem = len - full * 64;
    size_t padded = rem < 56 ? 64 : 128;
    memcpy(buf, m + full * 64, rem);
    buf[rem] = 0x80;
    memset(buf + rem + 1, 0, padded - rem - 1 - 8);
    uint64_t bits = total * 8;
    store_be32(buf + padded - 8, (uint32_t)(bits >> 32));
    store_be32(buf + padded - 4, (uint32_t)bits);
    f(st, buf, padded / 64);
}

/*
 * Prime the inner and outer pad states of `key` into states[0..7] and states[8..15]. A key
 * longer than a block is hashed first, as HMAC says. The states are all a caller keeps.
 */
EXPORT void sluice_hmac_prime(const uint8_t *key, size_t key_len, uint32_t states[16]) {
    int impl;
    compress_fn f = best_compress(&impl);
    uint8_t block[64] = {0};
    if (key_len > 64) {
        uint32_t st[8];
        memcpy(st, IV, sizeof st);
        finish(f, st, key, key_len, key_len);
        for (int i = 0; i < 8; i++) store_be32(block + 4 * i, st[i]);
    } else {
        memcpy(block, key, key_len);
    }
    uint8_t pad[64];
    for (int which = 0; which < 2; which++) {
        for (int i = 0; i < 64; i++) pad[i] = block[i] ^ (which ? 0x5c : 0x36);
        memcpy(states + 8 * which, IV, 32);
        f(states + 8 * which, pad, 1);
    }
    memset(block, 0, sizeof block);
    memset(pad, 0, sizeof pad);
}

/*
 * Hex HMAC of values i = 0..n-1, value i being data[offsets[i] .. offsets[i+1]) (Arrow binary
 * layout), into out[64*i .. 64*i+64). Returns 0, or -1 when an offset range is invalid (then
 * out is partly written and must be discarded).
 */
EXPORT int sluice_hmac_hex(const uint32_t states[16], const int32_t *offsets,
                           const uint8_t *data, int64_t n, int portable, char *out) {
    static const char hex[] = "0123456789abcdef";
    int impl;
    compress_fn f = portable ? compress_portable : best_compress(&impl);
    for (int64_t i = 0; i < n; i++) {
        int32_t start = offsets[i], end = offsets[i + 1];
        if (start < 0 || end < start) return -1;
        uint32_t st[8];
        memcpy(st, states, 32);
        finish(f, st, data + start, (size_t)(end - start), 64 + (uint64_t)(end - start));
        uint8_t block[64];
        for (int j = 0; j < 8; j++) store_be32(block + 4 * j, st[j]);
        block[32] = 0x80;
        memset(block + 33, 0, 64 - 33 - 8);
        store_be32(block + 56, 0);
        store_be32(block + 60, (64 + 32) * 8);
        memcpy(st, states + 8, 32);
        f(st, block, 1);
        char *o = out + 64 * i;
        for (int j = 0; j < 8; j++) {
            for (int k = 0; k < 4; k++) {
                uint8_t byte = (uint8_t)(st[j] >> (24 - 8 * k));
                *o++ = hex[byte >> 4];
                *o++ = hex[byte & 15];
            }
        }
    }
    return 0;
}
