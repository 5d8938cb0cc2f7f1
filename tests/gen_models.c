/* Writes random valid models (tests/modelgen.h) as files, e.g. as seeds of the
 * front-end fuzzer (fuzz/run.sh):
 *
 *   gen_models [--count N] [--seed S] [--out DIR]    (default 100, 1, .)
 *   gen_models --print SEED                          one model on stdout
 */
#include "modelgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    long count = 100;
    unsigned long long seed = 1;
    const char *out = ".";
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--print") == 0 && v) {
            char *text = modelgen(strtoull(v, NULL, 10));
            if (!text) return 1;
            fputs(text, stdout);
            free(text);
            return fflush(stdout) != 0;
        } else if (strcmp(argv[i], "--count") == 0 && v) {
            count = strtol(v, NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && v) {
            seed = strtoull(v, NULL, 10);
        } else if (strcmp(argv[i], "--out") == 0 && v) {
            out = v;
        } else {
            fprintf(stderr,
                    "usage: gen_models [--count N] [--seed S] [--out DIR] | --print SEED\n");
            return 2;
        }
    }
    for (long k = 0; k < count; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/gen_%llu.mtr", out, seed + (unsigned long long)k);
        char *text = modelgen(seed + (unsigned long long)k);
        FILE *f = text ? fopen(path, "w") : NULL;
        int bad = !f || fputs(text, f) == EOF;
        if (f && fclose(f) != 0) bad = 1;
        free(text);
        if (bad) {
            fprintf(stderr, "gen_models: cannot write %s\n", path);
            return 1;
        }
    }
    return 0;
}
