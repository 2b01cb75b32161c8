/*
 * Test driver for hmac_sha256.c on another architecture (run under qemu-user by
 * test_native_hmac.py): reads  u32 key_len | key | u32 n | i32 offsets[n+1] | data  on stdin
 * (little-endian) and writes the implementation id as one byte, then the hex HMACs computed
 * with the best implementation, then the same with portable C.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int sluice_hmac_impl(int portable);
void sluice_hmac_prime(const uint8_t *key, size_t key_len, uint32_t states[16]);
int sluice_hmac_hex(const uint32_t states[16], const int32_t *offsets, const uint8_t *data,
                    int64_t n, int portable, char *out);

static void *read_exact(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p || fread(p, 1, size, stdin) != size) exit(3);
    return p;
}

int main(void) {
    uint32_t *key_len = read_exact(4);
    uint8_t *key = read_exact(*key_len);
    uint32_t *n = read_exact(4);
    int32_t *offsets = read_exact(4 * ((size_t)*n + 1));
    uint8_t *data = read_exact((size_t)offsets[*n]);
    uint32_t states[16];
    sluice_hmac_prime(key, *key_len, states);
    char *out = malloc(64 * (size_t)*n + 1);
    putchar('0' + sluice_hmac_impl(0));
    for (int portable = 0; portable < 2; portable++) {
        if (sluice_hmac_hex(states, offsets, data, *n, portable, out) != 0) return 4;
        fwrite(out, 1, 64 * (size_t)*n, stdout);
    }
    return 0;
}
