/* libFuzzer target: the .mtr front end and, for every input that checks, the
 * whole back half (lowering, rewrites, autodiff, scheduling, emit) with and
 * without the rewrites, then model.bin encoding and decoding. Anything the
 * compiler accepts must compile, and what it emits must decode. */
#include "emit.h"
#include "frontend.h"
#include "mtr/model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *sink(void)
{
    static FILE *null;
    if (!null) null = fopen("/dev/null", "w");
    if (!null) abort();
    return null;
}

static void compile_and_round_trip(const AstModel *am, int rewrite)
{
    EmitOptions o = emit_defaults();
    o.rewrite = rewrite;
    MtrModel *m = emit_model_opts(am, &o, sink());
    if (!m) return; /* an allocation the compiler refused; reported, not a crash */
    uint8_t *buf = NULL;
    size_t len = 0;
    MtrError e = {0};
    if (mtr_model_encode(m, &buf, &len, &e) == MTR_OK) {
        MtrModel *back = NULL;
        if (mtr_model_decode(buf, len, "fuzz", &back, &e) != MTR_OK) {
            fprintf(stderr, "an emitted model does not decode: %s\n", e.msg);
            abort();
        }
        mtr_model_free(back);
        free(buf);
    }
    mtr_model_free(m);
    if (emit_dump_opts(am, &o, "graph", 4, sink(), sink()) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Pool *pool = pool_new();
    Diag *diag = diag_new(sink());
    if (pool && diag) {
        AstModel *am = frontend_parse("fuzz.mtr", (const char *)data, size, pool, diag);
        if (am) {
            compile_and_round_trip(am, 1);
            compile_and_round_trip(am, 0);
        }
    }
    diag_free(diag);
    pool_free(pool);
    return 0;
}
