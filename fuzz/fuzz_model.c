/* libFuzzer target: model.bin decoding. Bit 0 of the first byte chooses
 * whether the rest is decoded as it is, or first has every section CRC and
 * the header CRC recomputed, so that mutations get past the checksums into the
 * checks of counts, indices, shapes and programs. A model that decodes is then
 * driven the way mtrun drives one: info, every knob set (valid and invalid
 * values), encode and decode again (must succeed), predict and recommend when
 * trained, and a training step (small bound sizes, zero inputs). */
#include "mtr/crc32.h"
#include "mtr/exec.h"
#include "mtr/knobs.h"
#include "mtr/model.h"
#include "mtr/rng.h"
#include "mtr/run.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *sink(void)
{
    static FILE *null;
    if (!null) null = fopen("/dev/null", "w");
    if (!null) abort();
    return null;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes the CRCs of docs/format.md where the table allows it. */
static void fix_crcs(uint8_t *b, size_t len)
{
    if (len < 24) return;
    uint32_t n = get32(b + 12);
    if (n > 64 || 24 + 24 * (size_t)n > len) return;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *ent = b + 24 + 24 * (size_t)i;
        uint64_t off = get64(ent + 8), sz = get64(ent + 16);
        if (off <= len && sz <= len - off) put32(ent + 4, mtr_crc32(b + off, (size_t)sz));
    }
    uint32_t crc = mtr_crc32_update(0, b, 20);
    put32(b + 20, mtr_crc32_update(crc, b + 24, 24 * (size_t)n));
}

static int train_program(const MtrModel *m)
{
    return mtr_model_program(m, MTR_PROG_TRAIN);
}

static void train_step(const MtrModel *m)
{
    int p = train_program(m);
    if (p < 0 || m->n_symbols > 64) return;
    int64_t values[64];
    for (uint32_t i = 0; i < m->n_symbols; i++)
        values[i] = m->symbol_info[i].kind == MTR_SYM_K       ? 2
                    : m->symbol_info[i].kind == MTR_SYM_VOCAB ? 5
                                                              : 4;
    for (uint32_t t = 0; t < m->n_tensors; t++)
        if (mtr_tensor_elems(&m->tensors[t], values) > (1 << 18)) return; /* too big to be quick */
    static const MtrProgramKind progs[] = {MTR_PROG_TRAIN, 0};
    MtrSession *s = NULL;
    MtrError e = {0};
    if (mtr_session_new_for(m, values, progs, &s, &e) != MTR_OK) return;
    Rng r;
    rng_seed(&r, 1);
    mtr_session_init_params(s, &r);
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        if (m->tensors[t].role != MTR_ROLE_INPUT) continue;
        void *buf = mtr_session_tensor(s, (int32_t)t);
        int64_t n = mtr_session_tensor_elems(s, (int32_t)t, 4);
        if (buf && n > 0) memset(buf, 0, (size_t)n * 4);
    }
    mtr_session_run(s, p, 4);
    mtr_session_free(s);
}

static void serve(const MtrModel *m)
{
    const char *names[16], *values[16];
    int n = 0;
    for (uint32_t v = 0; v < m->n_vocabs && n < 16; v++) {
        const MtrVocab *voc = &m->vocabs[v];
        if ((uint32_t)voc->column >= m->n_columns) continue;
        names[n] = m->columns[voc->column].name;
        values[n++] = voc->n ? voc->words[0] : "";
    }
    MtrError e = {0};
    (void)mtr_run_predict(m, n, names, values, sink(), &e);
    (void)mtr_run_recommend(m, n, names, values, 3, sink(), &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    if (data[0] & 1) fix_crcs(buf, size - 1);
    MtrModel *m = NULL;
    MtrError e = {0};
    if (mtr_model_decode(buf, size - 1, "fuzz.bin", &m, &e) == MTR_OK) {
        mtr_model_print_info(m, sink());
        char kv[256];
        for (uint32_t k = 0; k < m->n_knobs && k < 32; k++) {
            snprintf(kv, sizeof kv, "%s=%.9g", m->knobs[k].name, m->knobs[k].value);
            (void)mtr_knob_assign(m, kv, &e);
            snprintf(kv, sizeof kv, "%s=-1e39", m->knobs[k].name);
            (void)mtr_knob_assign(m, kv, &e);
        }
        uint8_t *again = NULL;
        size_t len = 0;
        if (mtr_model_encode(m, &again, &len, &e) == MTR_OK) {
            MtrModel *back = NULL;
            if (mtr_model_decode(again, len, "re-encoded", &back, &e) != MTR_OK) {
                fprintf(stderr, "a decoded model does not round trip: %s\n", e.msg);
                abort();
            }
            mtr_model_free(back);
            free(again);
        }
        if (m->trained) serve(m);
        train_step(m);
        mtr_model_free(m);
    }
    free(buf);
    return 0;
}
