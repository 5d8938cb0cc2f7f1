/* Roofline of the tutorial's joint model (prints figures, never passes or fails):
 * the floating-point work of one training step at MovieLens 100K's sizes, and
 * what OpenBLAS's sgemm reaches here on the products that carry it, at 1 and 2
 * threads; hence the least time an epoch could take on this machine if every
 * other pass were free.
 *
 * One step, batch B = 8192 (80,000 training rows make 9.77 batches an epoch),
 * with the distinct ids of a batch (some 905 users and 1200 titles; give other
 * counts as arguments: bench_roofline [USERS TITLES]):
 *   dense1 (64 -> 256) per distinct id, forward, dkernel and dx:  3 x 2 n D 256
 *   dense2 (256 -> 128) on every row, forward, dx and dkernel:     3 x 2 B 256 128
 *   dense3 (128 -> 1):                                             3 x 2 B 128
 *   the distinct-id softmax: scores, dq = P C and dc = P^T Q:     3 x 2 nq nc D
 * Each product is timed alone (median of 9) at its own shape, so the sum is
 * the time of the products with nothing else in the step. */
#include "mtr/rng.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define REPEATS 9
#define B       8192
#define D       32
#define H1      256
#define H2      128

static double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *random_floats(Rng *r, size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_roofline: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = rng_float(r) - 0.5f;
    return p;
}

/* One product c = op(a) op(b), (m,n) = (m,k) (k,n), row-major. */
typedef struct {
    const char *name;
    int ta, tb;
    int m, n, k;
} Product;

/* The median seconds of one product at its shape, on fresh operands: wall
 * time, and in *cpu the process's CPU seconds (all threads), which a shared
 * machine disturbs less. */
static double product_time(Rng *r, const Product *p, double *cpu)
{
    float *a = random_floats(r, (size_t)p->m * (size_t)p->k);
    float *b = random_floats(r, (size_t)p->k * (size_t)p->n);
    float *c = random_floats(r, (size_t)p->m * (size_t)p->n);
    int lda = p->ta ? p->m : p->k, ldb = p->tb ? p->k : p->n;
    double t[REPEATS], tc[REPEATS];
    for (int i = 0; i < REPEATS; i++) {
        double t0 = clock_seconds(CLOCK_MONOTONIC), c0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
        cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                    p->tb ? CblasTrans : CblasNoTrans, p->m, p->n, p->k, 1.0f, a, lda, b, ldb, 0.0f,
                    c, p->n);
        t[i] = clock_seconds(CLOCK_MONOTONIC) - t0;
        tc[i] = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    qsort(t, REPEATS, sizeof t[0], by_value);
    qsort(tc, REPEATS, sizeof tc[0], by_value);
    *cpu = tc[REPEATS / 2];
    free(a);
    free(b);
    free(c);
    return t[REPEATS / 2];
}

int main(int argc, char **argv)
{
    int users = argc > 1 ? atoi(argv[1]) : 905, titles = argc > 2 ? atoi(argv[2]) : 1200;
    if (users <= 0 || titles <= 0) {
        fprintf(stderr, "usage: bench_roofline [USERS TITLES] (distinct ids of a batch)\n");
        return 2;
    }
    int ids = users + titles;
    const Product products[] = {
        {"dense1 fwd (ids)", 0, 0, ids, H1, D},  {"dense1 dkernel (ids)", 1, 0, D, H1, ids},
        {"dense1 dx (ids)", 0, 1, ids, D, H1},   {"dense2 fwd", 0, 0, B, H2, H1},
        {"dense2 dx", 0, 1, B, H1, H2},          {"dense2 dkernel", 1, 0, H1, H2, B},
        {"dense3 fwd", 0, 0, B, 1, H2},          {"dense3 dx", 0, 1, B, H2, 1},
        {"dense3 dkernel", 1, 0, H2, 1, B},      {"softmax scores", 0, 1, users, titles, D},
        {"softmax dq", 0, 0, users, D, titles},  {"softmax dc", 1, 0, titles, D, users},
        {"square 1024", 0, 0, 1024, 1024, 1024},
    };
    int n_products = (int)(sizeof products / sizeof products[0]);
    double steps = 80000.0 / B;
    Rng r;
    rng_seed(&r, 7);
    printf("bench_roofline: one step at B = %d, %d distinct users, %d distinct titles; "
           "%.2f steps an epoch; %s\n",
           B, users, titles, steps, openblas_get_config());
    for (int threads = 1; threads <= 2; threads++) {
        openblas_set_num_threads(threads);
        double flops = 0.0, seconds = 0.0, cpu_seconds = 0.0;
        printf("\nthreads %d\n%-22s %6s %6s %6s %10s %10s %8s %10s\n", threads, "product", "m", "n",
               "k", "MFLOP", "ms", "GFLOP/s", "cpu ms");
        for (int i = 0; i < n_products; i++) {
            const Product *p = &products[i];
            double cpu, f = 2.0 * p->m * p->n * p->k, t = product_time(&r, p, &cpu);
            printf("%-22s %6d %6d %6d %10.1f %10.3f %8.1f %10.3f\n", p->name, p->m, p->n, p->k,
                   f / 1e6, 1e3 * t, f / t / 1e9, 1e3 * cpu);
            if (i < n_products - 1) /* the square one is a reference */
                flops += f, seconds += t, cpu_seconds += cpu;
        }
        printf("%-22s %20s %10.1f %10.3f %8.1f %10.3f\n", "step's products", "", flops / 1e6,
               1e3 * seconds, flops / seconds / 1e9, 1e3 * cpu_seconds);
        printf("epoch's products: %.1f GFLOP in %.3f s (the floor of an epoch at %d thread%s)\n",
               flops * steps / 1e9, seconds * steps, threads, threads == 1 ? "" : "s");
    }
    return 0;
}
