/*
 * Memory latency: `gcc -O2 -o /tmp/memlat benches/load/memlat.c && taskset -c 1 /tmp/memlat`.
 *
 * Follows a chain of pointers laid out in a random cyclic order over a working set of each
 * size (one pointer per 64-byte line), so each load depends on the last and the hardware
 * cannot prefetch it: the time per load is the machine's latency for a line that is not in
 * a cache near the core. BENCHMARKS.md uses it to turn "how many cache lines does a lookup
 * touch" into microseconds (issue 18, item 3).
 *
 * Arguments: working-set sizes in MiB (default 1 8 32 64 256).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define LINE_WORDS (64 / sizeof(size_t))

/* xorshift64: a fixed sequence, so every run walks the same chain. */
static uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static double ns_per_load(size_t mib) {
    size_t lines = mib * 1024 * 1024 / 64;
    size_t *chain = aligned_alloc(64, lines * 64);
    size_t *order = malloc(lines * sizeof(size_t));
    if (chain == NULL || order == NULL) {
        fprintf(stderr, "memlat: cannot allocate %zu MiB\n", mib);
        exit(1);
    }
    uint64_t state = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < lines; i++) order[i] = i;
    for (size_t i = lines - 1; i > 0; i--) {
        size_t j = next_random(&state) % (i + 1);
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < lines; i++) chain[order[i] * LINE_WORDS] = order[(i + 1) % lines] * LINE_WORDS;
    free(order);

    size_t at = 0;
    for (size_t i = 0; i < lines; i++) at = chain[at]; /* touch every line once first */
    const size_t loads = 20 * 1000 * 1000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < loads; i++) at = chain[at];
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(chain);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    /* `at` is printed so the loop cannot be optimised away. */
    if (at == (size_t)-1) printf("unreachable\n");
    return ns / (double)loads;
}

int main(int argc, char **argv) {
    static const char *defaults[] = {"1", "8", "32", "64", "256"};
    int count = argc > 1 ? argc - 1 : 5;
    const char **sizes = argc > 1 ? (const char **)argv + 1 : defaults;
    printf("working set   ns per dependent load\n");
    for (int i = 0; i < count; i++) {
        size_t mib = strtoul(sizes[i], NULL, 10);
        if (mib == 0) {
            fprintf(stderr, "memlat: sizes are whole MiB, not %s\n", sizes[i]);
            return 2;
        }
        printf("%6zu MiB    %8.1f\n", mib, ns_per_load(mib));
    }
    return 0;
}
