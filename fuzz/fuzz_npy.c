/* libFuzzer target: the .npy reader (the files `import` reads). */
#include "mtr/npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float last_sum;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/mtr-fuzz-npy-%ld.npy", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    float *v = NULL;
    int rank = 0;
    int64_t shape[MTR_MAX_RANK] = {0, 0};
    MtrError e = {0};
    if (mtr_npy_read(path, &v, &rank, shape, &e) == MTR_OK) {
        int64_t n = 1;
        for (int d = 0; d < rank; d++) n *= shape[d];
        float acc = 0;
        for (int64_t i = 0; i < n; i++) acc += v[i]; /* every element is readable */
        last_sum = acc;
        free(v);
    }
    return 0;
}
