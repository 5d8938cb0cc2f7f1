/* The executor (runtime/exec.c) and buffer placement (runtime/arena.c): the step
 * loop allocates nothing, a partial last batch computes what a session bound to
 * that batch computes, buffers alive together never overlap, runs are
 * deterministic, inputs filled through mtr_session_tensor are what every program
 * reads, and a corrupted model is refused by mtr_session_new with a message. */
#define _GNU_SOURCE 1 /* __libc_malloc and friends, for the allocation counter */

#include "autodiff.h"
#include "diag.h"
#include "graph.h"
#include "schedule.h"
#include "emit.h"
#include "frontend.h"
#include "pool.h"
#include "testutil.h"

#include "mtr/exec.h"
#include "mtr/model.h"
#include "mtr/plan.h"
#include "mtr/rng.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- counting allocations ------------------------------------------------
 * Counting needs state that malloc can reach without a context argument: one
 * counter, armed only around the measured region. Under AddressSanitizer the
 * sanitizer's own allocator serves malloc, and it calls hooks we install; in a
 * plain build this program's malloc family (which the dynamic linker prefers
 * over libc's for every library in the process, OpenBLAS included) counts
 * and forwards to glibc's __libc_* entry points. Both count a malloc followed
 * by its free, which byte totals would miss. */
#if defined(__SANITIZE_ADDRESS__)
#define MTR_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MTR_TEST_ASAN 1
#endif
#endif

typedef struct {
    volatile int armed;
    volatile long allocs;
} AllocCounter;
static AllocCounter counter; /* the one mutable global: malloc has no context */

#ifdef MTR_TEST_ASAN
/* from <sanitizer/allocator_interface.h>, which not every toolchain installs */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static void on_malloc(const volatile void *ptr, size_t size)
{
    (void)ptr, (void)size;
    if (counter.armed) counter.allocs++;
}

static void on_free(const volatile void *ptr)
{
    (void)ptr;
}

static void counter_install(void)
{
    static int installed;
    if (!installed) __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
    installed = 1;
}
#else
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

static void count(void)
{
    if (counter.armed) counter.allocs++;
}

void *malloc(size_t n)
{
    count();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    count();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    count();
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    count();
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n);
void *memalign(size_t align, size_t n)
{
    count();
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    count();
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void free(void *p)
{
    __libc_free(p);
}

static void counter_install(void) {}
#endif

static void counter_arm(void)
{
    counter_install();
    counter.allocs = 0;
    counter.armed = 1;
}

static long counter_disarm(void)
{
    counter.armed = 0;
    return counter.allocs;
}

/* ---- a small movielens model ---------------------------------------------- */

static const char small_movielens[] =
    "model movielens_small\n"
    "input user_id     : string\n"
    "input movie_title : string\n"
    "label user_rating : float\n"
    "tower user  = user_id     -> lookup -> embedding(4)\n"
    "tower movie = movie_title -> lookup -> embedding(4)\n"
    "head rating = concat(user, movie) -> dense(8, relu) -> dense(4, relu) -> dense(1)\n"
    "task rating    = ranking(rating, user_rating) loss mse metrics rmse weight 1.0\n"
    "task retrieval = retrieval(user, movie) metrics top_k(1, 5) weight 1.0\n"
    "train {\n"
    "  optimizer adagrad(lr = 0.1)\n"
    "  batch 8\n"
    "}\n";

static MtrModel *compile_text(const char *name, const char *text)
{
    MtrModel *m = tu_compile(name, text);
    assert_non_null(m);
    return m;
}

static MtrModel *compile_file(const char *rel)
{
    char *path = tu_path(tu_source_dir(), rel);
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    if (!text) fail_msg("cannot read %s", path);
    MtrModel *m = compile_text(path, text);
    free(text);
    free(path);
    return m;
}

typedef struct {
    int64_t batch, users, movies, items, k;
} Sizes;

static void bind_values(const MtrModel *m, const Sizes *z, int64_t *values)
{
    for (uint32_t i = 0; i < m->n_symbols; i++) {
        const char *s = m->symbols[i];
        values[i] = strcmp(s, "batch") == 0               ? z->batch
                    : strcmp(s, "items") == 0             ? z->items
                    : strcmp(s, "k") == 0                 ? z->k
                    : strcmp(s, "vocab.user_id") == 0     ? z->users
                    : strcmp(s, "vocab.movie_title") == 0 ? z->movies
                                                          : -1;
        assert_true(values[i] > 0);
    }
}

/* rng_shuffle_u32 draws its partners ahead: the same permutation, and the
 * same generator state after, as the plain Fisher-Yates from the top, at
 * sizes around the draws it keeps ahead. */
static void test_shuffle_is_fisher_yates(void **state)
{
    (void)state;
    static const uint64_t sizes[] = {0, 1, 2, 3, 15, 16, 17, 18, 33, 1000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            uint64_t n = sizes[k];
            uint32_t got[1000], want[1000];
            for (uint64_t i = 0; i < n; i++) got[i] = want[i] = (uint32_t)(i * 7 + 3);
            Rng a, b;
            rng_seed(&a, seed);
            rng_seed(&b, seed);
            rng_shuffle_u32(&a, got, n);
            for (uint64_t i = n; i > 1; i--) {
                uint64_t j = rng_below(&b, i);
                uint32_t t = want[i - 1];
                want[i - 1] = want[j];
                want[j] = t;
            }
            if (n) assert_memory_equal(got, want, n * sizeof *got);
            assert_int_equal(rng_next(&a), rng_next(&b));
        }
    }
}

static MtrSession *new_session(const MtrModel *m, const Sizes *z, uint64_t seed)
{
    int64_t values[16];
    assert_true(m->n_symbols <= 16);
    bind_values(m, z, values);
    MtrSession *s = NULL;
    MtrError err = {0};
    if (mtr_session_new(m, values, &s, &err) != MTR_OK) fail_msg("mtr_session_new: %s", err.msg);
    Rng r;
    rng_seed(&r, seed);
    mtr_session_init_params(s, &r);
    return s;
}

/* Fills program p's column inputs for `rows` rows of batch number `step`. */
static void fill_batch(MtrSession *s, const MtrModel *m, int p, const Sizes *z, int step,
                       int64_t rows)
{
    int32_t tu = tu_find_input(m, p, MTR_SRC_COLUMN, "user_id");
    int32_t tm = tu_find_input(m, p, MTR_SRC_COLUMN, "movie_title");
    int32_t tr = tu_find_input(m, p, MTR_SRC_COLUMN, "user_rating");
    for (int64_t i = 0; i < rows; i++) {
        int64_t j = i + 7 * step;
        if (tu >= 0)
            ((int32_t *)mtr_session_tensor(s, tu))[i] = (int32_t)(1 + (j * 5) % (z->users - 1));
        if (tm >= 0)
            ((int32_t *)mtr_session_tensor(s, tm))[i] = (int32_t)(1 + (j * 3) % (z->movies - 1));
        if (tr >= 0) ((float *)mtr_session_tensor(s, tr))[i] = (float)(1 + (j * 7) % 5);
    }
}

static const Sizes small = {8, 6, 7, 7, 3};

/* ---- (a) the step loop allocates nothing ---------------------------------- */

static void test_counter_sees_a_malloc(void **state)
{
    (void)state;
    /* through a volatile pointer, so the compiler cannot drop the pair */
    void *(*volatile get)(size_t) = malloc;
    void (*volatile put)(void *) = free;
    counter_arm();
    void *p = get(100);
    put(p);
    long n = counter_disarm();
    assert_non_null(p);
    if (n < 1) fail_msg("the allocation counter did not see a malloc: it cannot be trusted");
}

/* An MMoE/PLE model with dropout (a mask drawn each step) and a mix over
 * several blocks, whose step must allocate nothing either. */
static const char small_ple[] =
    "model ple_small\n"
    "input user_id : string\ninput movie_title : string\nlabel user_rating : float\n"
    "label liked = user_rating >= 3\n"
    "tower user = user_id -> lookup -> embedding(4)\n"
    "tower movie = movie_title -> lookup -> embedding(4)\n"
    "experts shared = concat(user, movie) -> 3 x (dense(5, relu) -> dropout(0.1))\n"
    "experts own = concat(user, movie) -> 2 x dense(5, relu)\n"
    "head rating = mix(shared, own) -> dense(1)\n"
    "head like = mix(shared) -> dense(1)\n"
    "task rating = ranking(rating, user_rating) loss mse\n"
    "task liked = ranking(like, liked) loss bce\n"
    "task retrieval = retrieval(user, movie)\n"
    "train { optimizer adagrad(lr = 0.1) batch 8 }\n";

static void step_loop_allocates_nothing(const char *name, const char *text)
{
    MtrModel *m = compile_text(name, text);
    MtrSession *s = new_session(m, &small, 42);
    int p = mtr_model_program(m, MTR_PROG_TRAIN);
    int pe = mtr_model_program(m, MTR_PROG_EVAL);
    int pi = mtr_model_program(m, MTR_PROG_EMBED_ITEMS);
    assert_true(p >= 0 && pe >= 0 && pi >= 0);
    /* warm-up: first calls may set up OpenBLAS's own buffers */
    for (int i = 0; i < 2; i++) {
        fill_batch(s, m, p, &small, i, small.batch);
        mtr_session_run(s, p, small.batch);
        mtr_session_run(s, pi, small.batch);
        mtr_session_run(s, pe, small.batch);
    }
    counter_arm();
    for (int i = 0; i < 20; i++) {
        int64_t rows = i == 19 ? 5 : small.batch; /* a partial batch rebinds shapes */
        fill_batch(s, m, p, &small, i, rows);
        mtr_session_run(s, p, rows);
    }
    mtr_session_run(s, pi, small.batch);
    mtr_session_run(s, pe, small.batch);
    long n = counter_disarm();
    mtr_session_free(s);
    mtr_model_free(m);
    if (n != 0)
        fail_msg("%s: 20 train steps (and an evaluation) made %ld allocation(s); the step loop "
                 "must allocate nothing",
                 name, n);
}

static void test_step_loop_allocates_nothing(void **state)
{
    (void)state;
    step_loop_allocates_nothing("small.mtr", small_movielens);
    step_loop_allocates_nothing("ple_small.mtr", small_ple);
}

/* ---- (b) a partial last batch ---------------------------------------------- */

static void test_partial_batch(void **state)
{
    (void)state;
    MtrModel *m = compile_text("small.mtr", small_movielens);
    int p = mtr_model_program(m, MTR_PROG_TRAIN);
    int32_t loss = mtr_model_find_tensor(m, "loss");
    assert_true(p >= 0 && loss >= 0);
    Sizes exact = small;
    exact.batch = 5;
    MtrSession *big = new_session(m, &small, 9), *fit = new_session(m, &exact, 9);
    for (int step = 0; step < 3; step++) {
        fill_batch(big, m, p, &small, step, 5);
        fill_batch(fit, m, p, &exact, step, 5);
        mtr_session_run(big, p, 5);
        mtr_session_run(fit, p, 5);
        float a = *(const float *)mtr_session_tensor(big, loss);
        float b = *(const float *)mtr_session_tensor(fit, loss);
        /* the same kernels on the same values and sizes: bit-identical */
        if (memcmp(&a, &b, sizeof a) != 0)
            fail_msg("step %d: 5 rows in a session bound to batch 8 give loss %.9g, a session "
                     "bound to batch 5 gives %.9g",
                     step, (double)a, (double)b);
        assert_true(isfinite(a) && a > 0);
    }
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        if (m->tensors[t].role != MTR_ROLE_PARAM) continue;
        int64_t n = mtr_session_tensor_elems(big, (int32_t)t, 5);
        if (memcmp(mtr_session_tensor(big, (int32_t)t), mtr_session_tensor(fit, (int32_t)t),
                   (size_t)n * 4) != 0)
            fail_msg("parameter '%s' differs after 3 partial steps", m->tensors[t].name);
    }
    mtr_session_free(big);
    mtr_session_free(fit);
    mtr_model_free(m);
}

/* ---- (c) buffer placement -------------------------------------------------- */

/* The root of t's alias chain in program p (t itself when it has none). */
static int32_t alias_root(const MtrProgram *p, const int32_t *life, int32_t t)
{
    for (uint32_t hops = 0; life[t] >= 0 && p->lifetimes[life[t]].alias >= 0; hops++) {
        assert_true(hops <= p->n_lifetimes);
        t = p->lifetimes[life[t]].alias;
    }
    return t;
}

static void test_placement(void **state)
{
    (void)state;
    MtrModel *m = compile_file("models/movielens.mtr");
    const Sizes ml100k = {64, 944, 1665, 1682, 10};
    int64_t values[16];
    bind_values(m, &ml100k, values);
    uint32_t nt = m->n_tensors;
    size_t *off = calloc(nt, sizeof *off);
    int32_t *life = malloc(nt * sizeof *life);
    assert_non_null(off);
    assert_non_null(life);
    long pairs = 0;
    for (uint32_t pi = 0; pi < m->n_programs; pi++) {
        const MtrProgram *p = &m->programs[pi];
        MtrPlanSizes sz;
        MtrError err = {0};
        for (uint32_t t = 0; t < nt; t++) off[t] = SIZE_MAX, life[t] = -1;
        if (plan_place(m, p, values, off, &sz, &err) != MTR_OK)
            fail_msg("plan_place(%s): %s", p->name, err.msg);
        for (uint32_t l = 0; l < p->n_lifetimes; l++) life[p->lifetimes[l].tensor] = (int32_t)l;
        /* every buffer placed, aligned, inside the extent; aliases share offsets */
        for (uint32_t t = 0; t < nt; t++) {
            uint8_t role = m->tensors[t].role;
            int used = life[t] >= 0;
            for (uint32_t i = 0; !used && i < p->n_ops; i++)
                for (int k = 0; k < op_info(p->ops[i].kind)->n_in; k++)
                    used |= p->ops[i].in[k] == (int32_t)t && role == MTR_ROLE_INPUT;
            if (!used) continue;
            if (off[t] == SIZE_MAX)
                fail_msg("%s: '%s' was not placed", p->name, m->tensors[t].name);
            size_t bytes = plan_tensor_bytes(&m->tensors[t], values);
            assert_true(bytes > 0);
            if (off[t] % MTR_ALIGN != 0)
                fail_msg("%s: '%s' at offset %zu is not %d-byte aligned", p->name,
                         m->tensors[t].name, off[t], MTR_ALIGN);
            if (off[t] + bytes > sz.extent)
                fail_msg("%s: '%s' [%zu, %zu) runs past the extent %zu", p->name,
                         m->tensors[t].name, off[t], off[t] + bytes, sz.extent);
            if (life[t] >= 0 && p->lifetimes[life[t]].alias >= 0) {
                int32_t a = p->lifetimes[life[t]].alias;
                if (off[a] != off[t])
                    fail_msg("%s: '%s' shares the buffer of '%s' in place but sits at %zu, not %zu",
                             p->name, m->tensors[t].name, m->tensors[a].name, off[t], off[a]);
            }
        }
        /* at every op, the buffers alive then are disjoint (or one aliased buffer) */
        for (uint32_t i = 0; i < p->n_ops; i++) {
            int32_t alive[512];
            uint32_t na = 0;
            for (uint32_t t = 0; t < nt; t++) {
                if (off[t] == SIZE_MAX) continue;
                int in_life = life[t] >= 0 && p->lifetimes[life[t]].first <= (int32_t)i &&
                              (int32_t)i <= p->lifetimes[life[t]].last;
                if (m->tensors[t].role == MTR_ROLE_INPUT || in_life) {
                    assert_true(na < 512);
                    alive[na++] = (int32_t)t;
                }
            }
            for (uint32_t a = 0; a < na; a++)
                for (uint32_t b = a + 1; b < na; b++) {
                    int32_t x = alive[a], y = alive[b];
                    if (alias_root(p, life, x) == alias_root(p, life, y)) continue;
                    size_t xe = off[x] + plan_tensor_bytes(&m->tensors[x], values);
                    size_t ye = off[y] + plan_tensor_bytes(&m->tensors[y], values);
                    pairs++;
                    if (off[x] < ye && off[y] < xe)
                        fail_msg("%s, op %u: '%s' [%zu, %zu) and '%s' [%zu, %zu) are both alive "
                                 "and overlap",
                                 p->name, i, m->tensors[x].name, off[x], xe, m->tensors[y].name,
                                 off[y], ye);
                }
        }
        if (strcmp(p->name, "train_step") == 0) {
            printf("train_step at batch 64: %u buffers, extent %zu bytes, unshared %zu bytes\n",
                   sz.n_buffers, sz.extent, sz.unshared);
            assert_true(sz.extent < sz.unshared);
        }
        assert_true(sz.extent <= sz.unshared);
    }
    printf("placement: %ld pairs of simultaneously alive buffers checked\n", pairs);

    /* One pointer per tensor (mtr_session_tensor) serves every program, and the
     * step arena is shared: a tensor that several programs use (the column
     * inputs, the rating prediction) must sit at the same offset in each, or a
     * program reads inputs where nobody wrote them. */
    size_t *first_off = malloc(nt * sizeof *first_off);
    int *first_prog = malloc(nt * sizeof *first_prog);
    assert_non_null(first_off);
    assert_non_null(first_prog);
    for (uint32_t t = 0; t < nt; t++) first_prog[t] = -1;
    int moved = 0;
    for (uint32_t pi = 0; pi < m->n_programs; pi++) {
        const MtrProgram *p = &m->programs[pi];
        MtrPlanSizes sz;
        MtrError err = {0};
        for (uint32_t t = 0; t < nt; t++) off[t] = SIZE_MAX;
        assert_int_equal(plan_place(m, p, values, off, &sz, &err), MTR_OK);
        for (uint32_t t = 0; t < nt; t++) {
            uint8_t role = m->tensors[t].role;
            if (off[t] == SIZE_MAX || (role != MTR_ROLE_INPUT && role != MTR_ROLE_ACT)) continue;
            if (first_prog[t] < 0) {
                first_prog[t] = (int)pi;
                first_off[t] = off[t];
            } else if (first_off[t] != off[t] && role == MTR_ROLE_INPUT) {
                if (moved++ < 6)
                    fprintf(stderr,
                            "input '%s' is at offset %zu in %s but %zu in %s; "
                            "mtr_session_tensor gives only the first\n",
                            m->tensors[t].name, first_off[t], m->programs[first_prog[t]].name,
                            off[t], p->name);
            }
        }
    }
    free(first_off);
    free(first_prog);
    if (moved)
        fail_msg("%d input(s) sit at different offsets in different programs: filling one "
                 "through mtr_session_tensor feeds only the first program that reads it",
                 moved);
    free(off);
    free(life);
    mtr_model_free(m);
}

/* Programs are placed one by one from offset 0 of one step arena, so a tensor
 * that two programs use (the column inputs, the rating prediction) may sit at a
 * different offset in each; mtr_session_tensor has one pointer per tensor. Fill
 * the inputs through it and check each program's result against a direct
 * computation from the parameters. */
static float dense_forward(const float *x, int n_in, const float *k, const float *b, int n_out,
                           int relu, float *y)
{
    for (int j = 0; j < n_out; j++) {
        double acc = b[j];
        for (int i = 0; i < n_in; i++) acc += (double)x[i] * k[i * n_out + j];
        y[j] = relu && acc < 0 ? 0.0f : (float)acc;
    }
    return y[0];
}

static float reference_rating(MtrSession *s, const MtrModel *m, int32_t user, int32_t movie)
{
    const char *names[] = {"user.embedding",       "movie.embedding",      "rating.dense1.kernel",
                           "rating.dense1.bias",   "rating.dense2.kernel", "rating.dense2.bias",
                           "rating.dense3.kernel", "rating.dense3.bias"};
    const float *w[8];
    for (int i = 0; i < 8; i++) {
        int32_t t = mtr_model_find_tensor(m, names[i]);
        assert_true(t >= 0);
        w[i] = mtr_session_tensor(s, t);
    }
    float x[8], h1[8], h2[4], out[1];
    memcpy(x, w[0] + user * 4, 4 * sizeof *x);
    memcpy(x + 4, w[1] + movie * 4, 4 * sizeof *x);
    dense_forward(x, 8, w[2], w[3], 8, 1, h1);
    dense_forward(h1, 8, w[4], w[5], 4, 1, h2);
    return dense_forward(h2, 4, w[6], w[7], 1, 0, out);
}

static void test_inputs_reach_every_program(void **state)
{
    (void)state;
    MtrModel *m = compile_text("small.mtr", small_movielens);
    MtrSession *s = new_session(m, &small, 5);
    int pt = mtr_model_program(m, MTR_PROG_TRAIN);
    int pp = mtr_model_program(m, MTR_PROG_PREDICT);
    int pe = mtr_model_program(m, MTR_PROG_EVAL);
    assert_true(pt >= 0 && pp >= 0 && pe >= 0);
    int32_t pred = mtr_program_output(m, pe, MTR_OUT_PREDICTION, -1);
    assert_true(pred >= 0);
    /* a train step first, so that the arena holds train_step's values */
    fill_batch(s, m, pt, &small, 0, small.batch);
    mtr_session_run(s, pt, small.batch);
    int bad = 0;
    const int progs[] = {pp, pe};
    for (int q = 0; q < 2; q++) {
        int p = progs[q];
        fill_batch(s, m, p, &small, 3, small.batch);
        mtr_session_run(s, p, small.batch);
        const int32_t *u = mtr_session_tensor(s, tu_find_input(m, p, MTR_SRC_COLUMN, "user_id"));
        const int32_t *mv =
            mtr_session_tensor(s, tu_find_input(m, p, MTR_SRC_COLUMN, "movie_title"));
        const float *y = mtr_session_tensor(s, pred);
        for (int i = 0; i < small.batch; i++) {
            float want = reference_rating(s, m, u[i], mv[i]);
            if (fabsf(y[i] - want) > 1e-5f * (1.0f + fabsf(want))) {
                if (bad++ < 4)
                    fprintf(stderr,
                            "%s: row %d (user %d, movie %d): '%s' is %.7g, the parameters give "
                            "%.7g\n",
                            m->programs[p].name, i, u[i], mv[i], m->tensors[pred].name,
                            (double)y[i], (double)want);
            }
        }
    }
    mtr_session_free(s);
    mtr_model_free(m);
    if (bad)
        fail_msg("%d prediction(s) differ from the parameters' own: a program does not read its "
                 "inputs (or write its outputs) where mtr_session_tensor points",
                 bad);
}

/* The smallest case of the same contract: two programs over one id input and
 * one table, "grad" (loss and dtable) and "forward" (loss), as a compiler pass
 * test would build them. Filling the ids through mtr_session_tensor, each
 * program's loss (read through mtr_session_tensor) must be the sum of the
 * gathered rows. */
static void test_two_programs_share_an_input(void **state)
{
    (void)state;
    Module mod;
    Graph g;
    assert_int_equal(module_init(&mod, "two_programs"), 0);
    graph_init(&g, &mod);
    int32_t table =
        module_tensor(&mod, "table", MTR_ROLE_PARAM, shape_mat(dim_const(5), dim_const(3)));
    int32_t ids = module_tensor(&mod, "ids", MTR_ROLE_INPUT, shape_vec(dim_const(6), MTR_DT_I32));
    int32_t in1[] = {table, ids};
    int32_t y = graph_op(&g, OP_GATHER, in1, NULL, 0, NULL, "y");
    int32_t in2[] = {y};
    int32_t loss = graph_op(&g, OP_SUM_ALL, in2, NULL, 0, NULL, "loss");
    int32_t *grads = NULL;
    uint32_t n_grads = 0;
    assert_int_equal(autodiff_backward(&g, loss, &grads, &n_grads), 0);
    int32_t outs[] = {loss, grads[table]};
    MtrProgram progs[2];
    assert_int_equal(schedule_program(&g, MTR_PROG_TRAIN, outs, 2, &progs[0]), 0);
    assert_int_equal(schedule_program(&g, MTR_PROG_EVAL, &loss, 1, &progs[1]), 0);
    free(grads);
    graph_free(&g);
    MtrModel *m = module_take(&mod);
    assert_non_null(m);
    m->programs = calloc(2, sizeof *m->programs);
    assert_non_null(m->programs);
    memcpy(m->programs, progs, sizeof progs);
    m->n_programs = 2;

    MtrSession *s = NULL;
    MtrError err = {0};
    int64_t none = 1;
    if (mtr_session_new(m, &none, &s, &err) != MTR_OK) fail_msg("mtr_session_new: %s", err.msg);
    float *tab = mtr_session_tensor(s, table);
    for (int i = 0; i < 15; i++) tab[i] = (float)(i + 1);
    const int32_t id[6] = {1, 3, 1, 0, 4, 2};
    double want = 0;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++) want += tab[id[i] * 3 + j];
    int bad = 0;
    for (int round = 0; round < 2; round++)
        for (int p = 1; p >= 0; p--) {
            memcpy(mtr_session_tensor(s, ids), id, sizeof id);
            mtr_session_run(s, p, 1);
            double got = *(const float *)mtr_session_tensor(s, loss);
            if (got != want) {
                fprintf(stderr, "program '%s' (round %d): loss %g, the gathered rows sum to %g\n",
                        m->programs[p].name, round, got, want);
                bad++;
            }
        }
    mtr_session_free(s);
    mtr_model_free(m);
    if (bad)
        fail_msg("%d run(s) computed the wrong loss: programs are placed independently from "
                 "offset 0 of the step arena, but mtr_session_tensor keeps one pointer per "
                 "tensor (the first program's)",
                 bad);
}

/* Rank-3 tensors (experts x batch x width) run through the row-wise ops
 * unchanged: softmax then layer_norm over a (3, 4, 5) input give, element for
 * element, what they give over the same numbers as a (12, 5) matrix, and the
 * program binds, checks and places like any other. */
static float run_rowwise(int rank3, const float *x, float *out)
{
    Module mod;
    Graph g;
    assert_int_equal(module_init(&mod, "rank3"), 0);
    graph_init(&g, &mod);
    MtrShape xs = rank3 ? (MtrShape){.rank = 3,
                                     .dtype = MTR_DT_F32,
                                     .dim = {dim_const(3), dim_const(4), dim_const(5)}}
                        : shape_mat(dim_const(12), dim_const(5));
    int32_t xin = module_tensor(&mod, "x", MTR_ROLE_INPUT, xs);
    int32_t gain = module_tensor(&mod, "gain", MTR_ROLE_PARAM, shape_vec(dim_const(5), MTR_DT_F32));
    int32_t bias = module_tensor(&mod, "bias", MTR_ROLE_PARAM, shape_vec(dim_const(5), MTR_DT_F32));
    int32_t in1[] = {xin};
    int32_t sm = graph_op(&g, OP_SOFTMAX, in1, NULL, 0, NULL, "sm");
    int32_t in2[] = {sm, gain, bias};
    int32_t ln = graph_op(&g, OP_LAYER_NORM, in2, NULL, 1e-3f, NULL, "ln");
    int32_t in3[] = {ln};
    int32_t loss = graph_op(&g, OP_SUM_ALL, in3, NULL, 0, NULL, "loss");
    assert_true(sm >= 0 && ln >= 0 && loss >= 0);
    int32_t outs[] = {loss, ln};
    MtrModel *m = NULL;
    MtrSession *s = tu_one_program(&mod, &g, MTR_PROG_EVAL, outs, 2, &m);
    float *gp = mtr_session_tensor(s, gain), *bp = mtr_session_tensor(s, bias);
    for (int i = 0; i < 5; i++) gp[i] = 1.0f + 0.1f * (float)i, bp[i] = 0.01f * (float)i;
    memcpy(mtr_session_tensor(s, xin), x, 60 * sizeof *x);
    mtr_session_run(s, 0, 1);
    memcpy(out, mtr_session_tensor(s, ln), 60 * sizeof *out);
    float l = *(const float *)mtr_session_tensor(s, loss);
    mtr_session_free(s);
    mtr_model_free(m);
    return l;
}

static void test_rank3_rowwise(void **state)
{
    (void)state;
    float x[60], a[60], b[60];
    for (int i = 0; i < 60; i++) x[i] = (float)((i * 37) % 23) / 7.0f - 1.5f;
    float la = run_rowwise(1, x, a), lb = run_rowwise(0, x, b);
    assert_memory_equal(a, b, sizeof a);
    assert_true(la == lb);
    /* and it is a layer-normalised softmax: (y - bias) / gain has mean 0 in every row */
    for (int r = 0; r < 12; r++) {
        double mean = 0;
        for (int j = 0; j < 5; j++) mean += (a[r * 5 + j] - 0.01 * j) / (1.0 + 0.1 * j);
        assert_true(fabs(mean) < 1e-4);
    }
}

/* ---- (d) determinism ------------------------------------------------------- */

static void test_determinism(void **state)
{
    (void)state;
    MtrModel *m = compile_text("small.mtr", small_movielens);
    int p = mtr_model_program(m, MTR_PROG_TRAIN);
    MtrSession *a = new_session(m, &small, 77), *b = new_session(m, &small, 77);
    for (int step = 0; step < 5; step++) {
        fill_batch(a, m, p, &small, step, small.batch);
        fill_batch(b, m, p, &small, step, small.batch);
        mtr_session_run(a, p, small.batch);
        mtr_session_run(b, p, small.batch);
    }
    long compared = 0;
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        uint8_t role = m->tensors[t].role;
        if (role != MTR_ROLE_PARAM && role != MTR_ROLE_OPTSTATE) continue;
        int64_t n = mtr_session_tensor_elems(a, (int32_t)t, small.batch);
        if (memcmp(mtr_session_tensor(a, (int32_t)t), mtr_session_tensor(b, (int32_t)t),
                   (size_t)n * 4) != 0)
            fail_msg("'%s' differs between two sessions with the same seed", m->tensors[t].name);
        compared += n;
    }
    assert_true(compared > 0);
    mtr_session_free(a);
    mtr_session_free(b);
    mtr_model_free(m);
}

/* ---- (e) corrupted models -------------------------------------------------- */

typedef enum {
    BAD_OUTPUT_SHAPE,
    BAD_LIFETIME_END,
    BAD_LIFETIME_MISSING,
    BAD_KNOB_ATTR,
    BAD_NEGATIVE_KNOB,
    BAD_ALIAS_CYCLE,
    BAD_SYMBOL_ZERO,
    BAD_SYMBOL_HUGE,
    BAD_COUNT
} Corruption;

static const char *const corruption_names[BAD_COUNT] = {
    "an op's output tensor has the wrong shape",
    "a lifetime ends before a use",
    "an activation has no lifetime",
    "a knob attribute is out of range",
    "a knob attribute is negative",
    "a lifetime aliases itself",
    "a symbol is bound to 0",
    "a symbol is bound past INT32_MAX",
};

/* Applies corruption c to m (and the symbol values). Returns 0, or -1 if the
 * model offers no place for it. */
static int corrupt(MtrModel *m, int64_t *values, Corruption c)
{
    MtrProgram *p = &m->programs[mtr_model_program(m, MTR_PROG_TRAIN)];
    switch (c) {
    case BAD_OUTPUT_SHAPE:
        for (uint32_t i = 0; i < p->n_ops; i++)
            if (p->ops[i].kind == OP_BIAS_ADD) {
                m->tensors[p->ops[i].out[0]].dim[1].k += 1;
                return 0;
            }
        return -1;
    case BAD_LIFETIME_END:
        for (uint32_t l = 0; l < p->n_lifetimes; l++)
            if (p->lifetimes[l].last > p->lifetimes[l].first + 1) {
                p->lifetimes[l].last = p->lifetimes[l].first;
                return 0;
            }
        return -1;
    case BAD_LIFETIME_MISSING:
        if (p->n_lifetimes == 0) return -1;
        p->lifetimes[0] = p->lifetimes[--p->n_lifetimes];
        return 0;
    case BAD_KNOB_ATTR:
    case BAD_NEGATIVE_KNOB:
        for (uint32_t i = 0; i < p->n_ops; i++)
            if (p->ops[i].kind == OP_LOSS_WEIGHT) {
                p->ops[i].iattr[0] = c == BAD_KNOB_ATTR ? (int32_t)m->n_knobs + 3 : -2;
                return 0;
            }
        return -1;
    case BAD_ALIAS_CYCLE:
        if (p->n_lifetimes == 0) return -1;
        p->lifetimes[0].alias = p->lifetimes[0].tensor;
        return 0;
    case BAD_SYMBOL_ZERO:
    case BAD_SYMBOL_HUGE:
        values[mtr_model_find_symbol(m, "batch")] = c == BAD_SYMBOL_ZERO ? 0 : (int64_t)1 << 33;
        return 0;
    case BAD_COUNT:
        break;
    }
    return -1;
}

static void test_corrupt_models_refused(void **state)
{
    (void)state;
    MtrModel *orig = compile_text("small.mtr", small_movielens);
    uint8_t *buf = NULL;
    size_t len = 0;
    MtrError err = {0};
    if (mtr_model_encode(orig, &buf, &len, &err) != MTR_OK) fail_msg("encode: %s", err.msg);
    int bad = 0;
    for (int c = 0; c < BAD_COUNT; c++) {
        /* a copy through the format, then the corruption in memory */
        MtrModel *m = NULL;
        if (mtr_model_decode(buf, len, "small.bin", &m, &err) != MTR_OK)
            fail_msg("decode: %s", err.msg);
        int64_t values[16];
        bind_values(m, &small, values);
        if (corrupt(m, values, (Corruption)c)) fail_msg("cannot apply: %s", corruption_names[c]);

        /* straight to the executor */
        MtrSession *s = NULL;
        MtrError e1 = {0};
        MtrStatus rc = mtr_session_new(m, values, &s, &e1);
        if (rc == MTR_OK || s != NULL || e1.msg[0] == '\0') {
            fprintf(stderr, "not refused by mtr_session_new: %s\n", corruption_names[c]);
            bad++;
            mtr_session_free(s);
        } else {
            printf("refused (%s): %s\n", corruption_names[c], e1.msg);
        }

        /* and through model.bin, checksums recomputed: the loader or the executor */
        uint8_t *b2 = NULL;
        size_t l2 = 0;
        MtrError e2 = {0};
        if (mtr_model_encode(m, &b2, &l2, &e2) == MTR_OK) {
            MtrModel *m2 = NULL;
            if (mtr_model_decode(b2, l2, "corrupt.bin", &m2, &e2) == MTR_OK) {
                MtrSession *s2 = NULL;
                MtrError e3 = {0};
                if (mtr_session_new(m2, values, &s2, &e3) == MTR_OK || e3.msg[0] == '\0') {
                    fprintf(stderr, "a checksummed model.bin where %s was loaded and bound\n",
                            corruption_names[c]);
                    bad++;
                    mtr_session_free(s2);
                }
                mtr_model_free(m2);
            } else {
                assert_true(e2.msg[0] != '\0');
            }
            free(b2);
        }
        mtr_model_free(m);
    }
    free(buf);
    mtr_model_free(orig);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shuffle_is_fisher_yates),
        cmocka_unit_test(test_counter_sees_a_malloc),
        cmocka_unit_test(test_step_loop_allocates_nothing),
        cmocka_unit_test(test_partial_batch),
        cmocka_unit_test(test_placement),
        cmocka_unit_test(test_inputs_reach_every_program),
        cmocka_unit_test(test_two_programs_share_an_input),
        cmocka_unit_test(test_rank3_rowwise),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_corrupt_models_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
