/* Splitting a kernel's rows across the runtime's thread pool (kern_rows, see
 * kern.h). */
#include "kernels/kern.h"
#include "mtr/pool.h"

typedef struct {
    const KernelCall *call;
    KernRows fn;
    int64_t n, align;
} SplitJob;

static void split_part(void *ctx, int part, int parts)
{
    const SplitJob *job = ctx;
    int64_t lo, hi;
    pool_rows(job->n, job->align, part, parts, &lo, &hi);
    if (lo < hi) job->fn(job->call, lo, hi);
}

void kern_rows(const KernelCall *call, int64_t n, int64_t width, int64_t align, KernRows fn)
{
    int parts = pool_parts(n * (width > 0 ? width : 1), KERN_MIN_PART);
    if (parts <= 1 || n <= align) {
        fn(call, 0, n);
        return;
    }
    SplitJob job = {call, fn, n, align};
    pool_run(split_part, &job, parts);
}
