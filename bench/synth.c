/* synth: a seeded synthetic interaction log for benchmarks at any size.
 *
 *   synth --rows N --users U --items I [--user-zipf A] [--item-zipf B]
 *         [--topics T] [--seed S] --out DIR
 *
 * Writes DIR/interactions.csv (user_id,movie_title,user_rating: the column
 * names of models/movielens.mtr, so the tutorial's models run on it unchanged)
 * and DIR/items.csv (movie_title: every item, the retrieval candidates).
 *
 * Users are drawn with Zipf exponent A over their ids (0: uniform), items with
 * exponent B. A hidden low-rank structure makes learning possible: every user
 * and item belongs to one of T topics (a user's by a hash of its id, an item's
 * by its popularity rank modulo T); half of a user's rows
 * draw the item from the user's own topic (Zipf within the topic), half from
 * all items; the rating is 3 + 2 * (u . v) rounded and clipped to 1..5, where
 * u and v are the topic's unit centre plus per-id noise in R^T. The same
 * arguments give the same bytes. */
#include "mtr/rng.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOPICS 64

typedef struct {
    int64_t rows, users, items, topics;
    double user_zipf, item_zipf;
    uint64_t seed;
    const char *out;
} Opts;

/* A Zipf sampler over ranks 0..n-1: P(k) proportional to (k+1)^-s; the
 * cumulative weights, searched by bisection. */
typedef struct {
    double *cdf;
    int64_t n;
} Zipf;

static int zipf_init(Zipf *z, int64_t n, double s)
{
    z->n = n;
    z->cdf = malloc((size_t)n * sizeof *z->cdf);
    if (!z->cdf) return -1;
    double acc = 0.0;
    for (int64_t k = 0; k < n; k++) {
        acc += s == 0.0 ? 1.0 : pow((double)(k + 1), -s);
        z->cdf[k] = acc;
    }
    return 0;
}

static int64_t zipf_draw(const Zipf *z, Rng *r)
{
    double u = ((double)(rng_next(r) >> 11) * 0x1.0p-53) * z->cdf[z->n - 1];
    int64_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* A stable hash of an id (splitmix64's finaliser), for topics and noise. */
static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The hidden factor of an id in topic t: the topic's axis plus uniform noise
 * (a hash of the id) of size 0.5. */
static void factor(uint8_t t, int64_t topics, int64_t id, float *v)
{
    uint64_t h = mix((uint64_t)id);
    for (int64_t k = 0; k < topics; k++) {
        h = mix(h);
        v[k] = (float)((double)(h >> 11) * 0x1.0p-53 - 0.5) * 0.5f / sqrtf((float)topics);
    }
    v[t] += 1.0f;
}

static int64_t topic_of(uint64_t salt, int64_t id, int64_t topics)
{
    return (int64_t)(mix(salt ^ mix((uint64_t)id)) % (uint64_t)topics);
}

static int parse_i64(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x <= 0) return -1;
    *v = x;
    return 0;
}

static int parse_f64(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !(x >= 0.0) || x > 10.0) return -1;
    *v = x;
    return 0;
}

static int usage(const char *why)
{
    fprintf(stderr,
            "synth: %s\nusage: synth --rows N --users U --items I [--user-zipf A] "
            "[--item-zipf B] [--topics T] [--seed S] --out DIR\n",
            why);
    return 2;
}

static int parse(int argc, char **argv, Opts *o)
{
    *o = (Opts){.user_zipf = 1.0, .item_zipf = 1.0, .topics = 16, .seed = 42};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        if (!v) return usage("an option is missing its value");
        i++;
        if (strcmp(f, "--rows") == 0) {
            if (parse_i64(v, &o->rows)) return usage("--rows takes a positive number");
        } else if (strcmp(f, "--users") == 0) {
            if (parse_i64(v, &o->users)) return usage("--users takes a positive number");
        } else if (strcmp(f, "--items") == 0) {
            if (parse_i64(v, &o->items)) return usage("--items takes a positive number");
        } else if (strcmp(f, "--topics") == 0) {
            if (parse_i64(v, &o->topics) || o->topics > MAX_TOPICS)
                return usage("--topics takes a number from 1 to 64");
        } else if (strcmp(f, "--user-zipf") == 0) {
            if (parse_f64(v, &o->user_zipf)) return usage("--user-zipf takes a number in [0, 10]");
        } else if (strcmp(f, "--item-zipf") == 0) {
            if (parse_f64(v, &o->item_zipf)) return usage("--item-zipf takes a number in [0, 10]");
        } else if (strcmp(f, "--seed") == 0) {
            if (parse_i64(v, &n)) return usage("--seed takes a positive number");
            o->seed = (uint64_t)n;
        } else if (strcmp(f, "--out") == 0) {
            o->out = v;
        } else {
            return usage("unknown option");
        }
    }
    if (!o->rows || !o->users || !o->items || !o->out)
        return usage("--rows, --users, --items and --out are required");
    return 0;
}

static FILE *open_out(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "synth: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

int main(int argc, char **argv)
{
    Opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    const uint64_t user_salt = 0x5eed0001ull ^ o.seed;
    int64_t per_topic = (o.items + o.topics - 1) / o.topics;
    Zipf zu, zi, zt;
    if (zipf_init(&zu, o.users, o.user_zipf) || zipf_init(&zi, o.items, o.item_zipf) ||
        zipf_init(&zt, per_topic, o.item_zipf)) {
        fprintf(stderr, "synth: out of memory\n");
        return 1;
    }
    /* Ids are permuted so that popularity is not the id order. */
    uint32_t *uperm = malloc((size_t)o.users * sizeof *uperm);
    uint32_t *iperm = malloc((size_t)o.items * sizeof *iperm);
    if (!uperm || !iperm) {
        fprintf(stderr, "synth: out of memory\n");
        return 1;
    }
    Rng r;
    rng_seed(&r, o.seed);
    for (int64_t i = 0; i < o.users; i++) uperm[i] = (uint32_t)i;
    for (int64_t i = 0; i < o.items; i++) iperm[i] = (uint32_t)i;
    rng_shuffle_u32(&r, uperm, (uint64_t)o.users);
    rng_shuffle_u32(&r, iperm, (uint64_t)o.items);
    /* an item's topic is its popularity rank modulo T, so every topic has popular items */
    uint8_t *item_topic = malloc((size_t)o.items);
    if (!item_topic) {
        fprintf(stderr, "synth: out of memory\n");
        return 1;
    }
    for (int64_t p = 0; p < o.items; p++) item_topic[iperm[p]] = (uint8_t)(p % o.topics);

    FILE *items = open_out(o.out, "items.csv");
    if (!items) return 1;
    fprintf(items, "movie_title\n");
    for (int64_t i = 0; i < o.items; i++) fprintf(items, "i%lld\n", (long long)i);
    if (fclose(items)) {
        fprintf(stderr, "synth: writing items.csv failed\n");
        return 1;
    }
    FILE *f = open_out(o.out, "interactions.csv");
    if (!f) return 1;
    fprintf(f, "user_id,movie_title,user_rating\n");
    float u[MAX_TOPICS], v[MAX_TOPICS];
    for (int64_t row = 0; row < o.rows; row++) {
        int64_t user = uperm[zipf_draw(&zu, &r)];
        int64_t item;
        if (rng_next(&r) >> 63) {
            int64_t t = topic_of(user_salt, user, o.topics);
            int64_t p = zipf_draw(&zt, &r) * o.topics + t;
            item = iperm[p < o.items ? p : zipf_draw(&zi, &r)];
        } else {
            item = iperm[zipf_draw(&zi, &r)];
        }
        factor((uint8_t)topic_of(user_salt, user, o.topics), o.topics, user ^ INT64_MIN, u);
        factor(item_topic[item], o.topics, item, v);
        double dot = 0.0;
        for (int64_t k = 0; k < o.topics; k++) dot += (double)u[k] * v[k];
        double noise = ((double)(rng_next(&r) >> 11) * 0x1.0p-53 - 0.5);
        long rating = lround(3.0 + 2.0 * dot - 1.0 + noise);
        rating = rating < 1 ? 1 : rating > 5 ? 5 : rating;
        fprintf(f, "u%lld,i%lld,%ld\n", (long long)user, (long long)item, rating);
    }
    if (fclose(f)) {
        fprintf(stderr, "synth: writing interactions.csv failed\n");
        return 1;
    }
    free(zu.cdf), free(zi.cdf), free(zt.cdf), free(uperm), free(iperm), free(item_topic);
    return 0;
}
