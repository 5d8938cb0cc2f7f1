/* model.bin, the static program file: encoding a MtrModel into bytes, and
 * decoding and validating bytes back into a MtrModel. In: a model (encode) or a
 * buffer of untrusted bytes (decode). Out: the bytes laid out little-endian,
 * field by field, as docs/format.md specifies; or a model whose every index,
 * count and string has been checked, or an error naming the section and the
 * byte offset. Reading and atomic writing of files sit at the end. */
#include "mtr/crc32.h"
#include "mtr/model.h"
#include "mtr/save.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_SIZE  24 /* magic 8, version 4, section count 4, flags 4, CRC 4 */
#define ENTRY_SIZE   24 /* kind 4, CRC 4, offset 8, size 8 */
#define MAX_SECTIONS 64
#define FLAG_TRAINED 1u

static const uint8_t magic[8] = {'M', 'T', 'R', 'M', 'O', 'D', 'E', 'L'};
static const uint8_t zeros[8] = {0};

/* Section kinds, in the order they appear in the file. A file holds kinds
 * STRINGS..TASKS always, and BINDINGS..ITEMS exactly when it is trained. */
enum {
    SEC_STRINGS = 1,
    SEC_MODEL,
    SEC_SYMBOLS,
    SEC_TENSORS,
    SEC_PROGRAMS,
    SEC_KNOBS,
    SEC_COLUMNS,
    SEC_TASKS,
    SEC_BINDINGS,
    SEC_PARAMS,
    SEC_VOCABS,
    SEC_ITEMS,
    SEC_END
};

static const char *const section_names[SEC_END] = {
    [SEC_STRINGS] = "strings", [SEC_MODEL] = "model",       [SEC_SYMBOLS] = "symbols",
    [SEC_TENSORS] = "tensors", [SEC_PROGRAMS] = "programs", [SEC_KNOBS] = "knobs",
    [SEC_COLUMNS] = "columns", [SEC_TASKS] = "tasks",       [SEC_BINDINGS] = "bindings",
    [SEC_PARAMS] = "params",   [SEC_VOCABS] = "vocabs",     [SEC_ITEMS] = "items",
};

/* Record sizes, used to bound counts by the bytes left before allocating. */
#define SYMBOL_SIZE   8
#define TENSOR_SIZE   44
#define PROGRAM_SIZE  20
#define OP_MIN_SIZE   44 /* id 2, n_in 1, n_out 1, iattr 32, fattr 8 */
#define LIFETIME_SIZE 16
#define OUTPUT_SIZE   16
#define KNOB_SIZE     12
#define COLUMN_SIZE   24
#define TASK_SIZE     64

static int is_saved(const MtrTensor *t)
{
    return t->role == MTR_ROLE_PARAM || t->role == MTR_ROLE_OPTSTATE;
}

/* ---------------------------------------------------------------- encoding */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int failed; /* an allocation failed; later puts do nothing */
} Buf;

static void buf_put(Buf *b, const void *src, size_t n)
{
    if (b->failed || n == 0) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->failed = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u8(Buf *b, uint8_t v)
{
    buf_put(b, &v, 1);
}

static void put_u16(Buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_put(b, x, 2);
}

static void put_u32(Buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 4);
}

static void put_u64(Buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 8);
}

static void put_i32(Buf *b, int32_t v)
{
    put_u32(b, (uint32_t)v);
}

static void put_f32(Buf *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(b, u);
}

static void put_pad8(Buf *b)
{
    buf_put(b, zeros, (8 - b->len % 8) % 8);
}

typedef struct {
    Buf sec[SEC_END];
    int too_big; /* the string table outgrew 32-bit offsets */
} Enc;

/* Appends s to the string table and its offset to b; "" and NULL share offset 0. */
static void put_str(Enc *e, Buf *b, const char *s)
{
    Buf *strs = &e->sec[SEC_STRINGS];
    if (!s || !*s) {
        put_u32(b, 0);
        return;
    }
    if (strs->len > UINT32_MAX) e->too_big = 1;
    put_u32(b, (uint32_t)strs->len);
    buf_put(strs, s, strlen(s) + 1);
}

static void enc_tensors(Enc *e, const MtrModel *m)
{
    Buf *b = &e->sec[SEC_TENSORS];
    put_u32(b, m->n_tensors);
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const MtrTensor *t = &m->tensors[i];
        put_str(e, b, t->name);
        put_u8(b, t->dtype);
        put_u8(b, t->role);
        put_u8(b, t->rank);
        put_u8(b, t->init);
        put_f32(b, t->init_arg);
        for (int d = 0; d < MTR_MAX_RANK; d++) {
            put_i32(b, d < t->rank ? t->dim[d].sym : -1);
            put_i32(b, d < t->rank ? t->dim[d].k : 1);
        }
        put_u8(b, t->source);
        buf_put(b, zeros, 3);
        put_i32(b, t->source ? t->source_column : -1);
    }
}

static MtrStatus enc_programs(Enc *e, const MtrModel *m, MtrError *err)
{
    Buf *b = &e->sec[SEC_PROGRAMS];
    put_u32(b, m->n_programs);
    for (uint32_t p = 0; p < m->n_programs; p++) {
        const MtrProgram *pr = &m->programs[p];
        put_u8(b, pr->kind);
        buf_put(b, zeros, 3);
        put_u32(b, pr->n_ops);
        put_u32(b, pr->n_lifetimes);
        put_u32(b, pr->n_outputs);
        put_u32(b, pr->update_at);
        for (uint32_t i = 0; i < pr->n_ops; i++) {
            const MtrOp *op = &pr->ops[i];
            if ((unsigned)op->kind >= OP_COUNT)
                return mtr_fail(err, MTR_E_ARG, "model.bin: program '%s' op %u: bad op kind %d",
                                pr->name ? pr->name : "", i, (int)op->kind);
            const OpInfo *info = op_info(op->kind);
            put_u16(b, info->id);
            put_u8(b, info->n_in);
            put_u8(b, info->n_out);
            for (int k = 0; k < info->n_in; k++) put_i32(b, op->in[k]);
            for (int k = 0; k < info->n_out; k++) put_i32(b, op->out[k]);
            for (int k = 0; k < MTR_MAX_IATTR; k++) put_i32(b, op->iattr[k]);
            for (int k = 0; k < MTR_MAX_FATTR; k++) put_f32(b, op->fattr[k]);
        }
        for (uint32_t i = 0; i < pr->n_lifetimes; i++) {
            const MtrLifetime *lt = &pr->lifetimes[i];
            put_i32(b, lt->tensor);
            put_i32(b, lt->first);
            put_i32(b, lt->last);
            put_i32(b, lt->alias);
        }
        for (uint32_t i = 0; i < pr->n_outputs; i++) {
            const MtrOutput *o = &pr->outputs[i];
            put_u8(b, o->role);
            buf_put(b, zeros, 3);
            put_i32(b, o->task);
            put_i32(b, o->tensor);
            put_i32(b, o->param);
        }
    }
    return MTR_OK;
}

static MtrStatus enc_knobs(Enc *e, const MtrModel *m, MtrError *err)
{
    Buf *b = &e->sec[SEC_KNOBS];
    put_u32(b, m->n_knobs);
    for (uint32_t i = 0; i < m->n_knobs; i++) {
        const MtrKnob *k = &m->knobs[i];
        const char *name = k->name ? k->name : "";
        put_str(e, b, k->name);
        put_u8(b, k->type);
        put_u8(b, 0);
        put_u16(b, k->kind);
        if (k->type == MTR_KNOB_F32) {
            if (!isfinite(k->value) || fabs(k->value) > 3.4028234663852886e38)
                return mtr_fail(err, MTR_E_ARG,
                                "model.bin: knob '%s': value %g is not a finite f32", name,
                                k->value);
            put_f32(b, (float)k->value);
        } else if (k->type == MTR_KNOB_I32) {
            if (!(k->value >= INT32_MIN && k->value <= INT32_MAX) || k->value != floor(k->value))
                return mtr_fail(err, MTR_E_ARG, "model.bin: knob '%s': value %g is not an i32",
                                name, k->value);
            put_i32(b, (int32_t)k->value);
        } else {
            return mtr_fail(err, MTR_E_ARG, "model.bin: knob '%s': bad type %u", name, k->type);
        }
    }
    return MTR_OK;
}

/* After the columns: the feature columns' preprocessing, statistics and
 * item lists (docs/format.md, "features"). */
static void enc_features(Buf *b, const MtrModel *m)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->n_columns; i++) n += m->columns[i].feature != 0;
    put_u32(b, n);
    for (uint32_t i = 0; i < m->n_columns; i++) {
        const MtrColumn *c = &m->columns[i];
        if (!c->feature) continue;
        put_i32(b, (int32_t)i);
        put_u8(b, c->feature);
        put_u8(b, c->tokens);
        put_u8(b, c->is_list);
        put_u8(b, 0);
        put_i32(b, c->feature_of);
        put_i32(b, c->feature_arg);
        put_u32(b, c->max_len);
        put_u32(b, c->n_stats);
        for (uint32_t k = 0; k < c->n_stats; k++) put_f32(b, c->stats[k]);
        uint32_t lists = c->item_lists ? c->n_item_lists : 0;
        put_u32(b, lists);
        for (uint64_t k = 0; k < (uint64_t)lists * c->max_len; k++) put_i32(b, c->item_lists[k]);
    }
}

/* After the features: the side tables (docs/format.md, "sides"). */
static void enc_sides(Enc *e, Buf *b, const MtrModel *m)
{
    put_u32(b, m->n_sides);
    for (uint32_t s = 0; s < m->n_sides; s++) {
        const MtrSideTable *st = &m->sides[s];
        put_i32(b, st->key);
        put_u32(b, st->n_columns);
        for (uint32_t c = 0; c < st->n_columns; c++) put_i32(b, st->columns[c]);
        put_u32(b, st->n_rows);
        for (uint64_t i = 0; i < (uint64_t)st->n_rows * (1 + st->n_columns); i++)
            put_str(e, b, st->values[i]);
    }
}

static void enc_columns_tasks(Enc *e, const MtrModel *m)
{
    Buf *b = &e->sec[SEC_COLUMNS];
    put_u32(b, m->n_columns);
    for (uint32_t i = 0; i < m->n_columns; i++) {
        const MtrColumn *c = &m->columns[i];
        put_str(e, b, c->name);
        put_u8(b, c->type);
        put_u8(b, c->is_label);
        put_u8(b, c->lookup);
        put_u8(b, c->is_item);
        put_i32(b, c->vocab_sym);
        put_i32(b, c->derived_from);
        put_u8(b, c->compare);
        put_u8(b, c->is_user);
        buf_put(b, zeros, 2);
        put_f32(b, c->threshold);
    }
    enc_features(b, m);
    if (m->n_sides) enc_sides(e, b, m);
    b = &e->sec[SEC_TASKS];
    put_u32(b, m->n_tasks);
    for (uint32_t i = 0; i < m->n_tasks; i++) {
        const MtrTask *t = &m->tasks[i];
        put_str(e, b, t->name);
        put_str(e, b, t->about);
        put_u32(b, t->metrics);
        put_u32(b, t->n_ks);
        for (uint32_t k = 0; k < MTR_MAX_KS; k++) put_i32(b, k < t->n_ks ? t->ks[k] : 0);
        put_i32(b, t->weight_knob);
        put_i32(b, t->label_column);
        put_i32(b, t->loss_metric);
        put_i32(b, t->sample_knob);
    }
}

static MtrStatus enc_trained(Enc *e, const MtrModel *m, MtrError *err)
{
    if (m->n_symbols > 0 && !m->symbol_values)
        return mtr_fail(err, MTR_E_STATE, "model.bin: trained model has no bound symbol values");
    Buf *b = &e->sec[SEC_BINDINGS];
    put_u32(b, m->n_symbols);
    put_u32(b, 0);
    for (uint32_t i = 0; i < m->n_symbols; i++) put_u64(b, (uint64_t)m->symbol_values[i]);

    b = &e->sec[SEC_PARAMS];
    uint32_t n_saved = 0;
    for (uint32_t i = 0; i < m->n_tensors; i++) n_saved += is_saved(&m->tensors[i]);
    put_u32(b, n_saved);
    put_u32(b, 0);
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const MtrTensor *t = &m->tensors[i];
        if (!is_saved(t)) continue;
        int64_t n = mtr_tensor_elems(t, m->symbol_values);
        if (n < 0 || !m->param_data || !m->param_data[i])
            return mtr_fail(err, MTR_E_STATE, "model.bin: parameter '%s' has no data or no size",
                            t->name ? t->name : "");
        put_u32(b, i);
        put_u32(b, 0);
        put_u64(b, (uint64_t)n);
        for (int64_t k = 0; k < n; k++) put_f32(b, m->param_data[i][k]);
        put_pad8(b);
    }

    b = &e->sec[SEC_VOCABS];
    put_u32(b, m->n_vocabs);
    for (uint32_t v = 0; v < m->n_vocabs; v++) {
        const MtrVocab *voc = &m->vocabs[v];
        put_i32(b, voc->column);
        put_u32(b, voc->n);
        for (uint32_t i = 0; i < voc->n; i++) put_str(e, b, voc->words[i]);
    }

    b = &e->sec[SEC_ITEMS];
    const MtrItems *it = &m->items;
    put_u32(b, it->n);
    put_u32(b, it->n_columns);
    for (uint32_t c = 0; c < it->n_columns; c++) put_i32(b, it->columns[c]);
    for (uint32_t i = 0; i < it->n; i++) put_str(e, b, it->labels[i]);
    for (uint32_t c = 0; c < it->n_columns; c++)
        for (uint32_t i = 0; i < it->n; i++) put_i32(b, it->ids[c][i]);
    return MTR_OK;
}

static void put_le32_at(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64_at(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Lays out header, section table and the encoded sections in one buffer. */
static MtrStatus enc_assemble(Enc *e, int trained, uint8_t **buf, size_t *len, MtrError *err)
{
    int last = trained ? SEC_ITEMS : SEC_TASKS;
    uint32_t n = (uint32_t)last;
    size_t total = HEADER_SIZE + (size_t)ENTRY_SIZE * n;
    for (int k = SEC_STRINGS; k <= last; k++) {
        put_pad8(&e->sec[k]);
        if (e->sec[k].failed) return mtr_fail(err, MTR_E_NOMEM, "model.bin: out of memory");
        if (e->sec[k].len > SIZE_MAX - total)
            return mtr_fail(err, MTR_E_NOMEM, "model.bin: model too large");
        total += e->sec[k].len;
    }
    if (e->too_big) return mtr_fail(err, MTR_E_ARG, "model.bin: string table larger than 4 GiB");
    uint8_t *p = calloc(total, 1);
    if (!p) return mtr_fail(err, MTR_E_NOMEM, "model.bin: out of memory (%zu bytes)", total);
    memcpy(p, magic, 8);
    put_le32_at(p + 8, MTR_FORMAT_VERSION);
    put_le32_at(p + 12, n);
    put_le32_at(p + 16, trained ? FLAG_TRAINED : 0);
    size_t off = HEADER_SIZE + (size_t)ENTRY_SIZE * n;
    for (int k = SEC_STRINGS; k <= last; k++) {
        uint8_t *ent = p + HEADER_SIZE + (size_t)ENTRY_SIZE * (size_t)(k - 1);
        const Buf *s = &e->sec[k];
        put_le32_at(ent, (uint32_t)k);
        put_le32_at(ent + 4, mtr_crc32(s->p, s->len));
        put_le64_at(ent + 8, off);
        put_le64_at(ent + 16, s->len);
        if (s->len) memcpy(p + off, s->p, s->len);
        off += s->len;
    }
    uint32_t crc = mtr_crc32_update(0, p, 20);
    crc = mtr_crc32_update(crc, p + HEADER_SIZE, (size_t)ENTRY_SIZE * n);
    put_le32_at(p + 20, crc);
    *buf = p;
    *len = total;
    return MTR_OK;
}

MtrStatus mtr_model_encode(const MtrModel *m, uint8_t **buf, size_t *len, MtrError *err)
{
    Enc e;
    memset(&e, 0, sizeof e);
    *buf = NULL;
    *len = 0;
    put_u8(&e.sec[SEC_STRINGS], 0); /* offset 0 is the empty string */
    put_str(&e, &e.sec[SEC_MODEL], m->name);
    put_u32(&e.sec[SEC_MODEL], 0);
    put_u32(&e.sec[SEC_SYMBOLS], m->n_symbols);
    for (uint32_t i = 0; i < m->n_symbols; i++) {
        put_u8(&e.sec[SEC_SYMBOLS], m->symbol_info[i].kind);
        buf_put(&e.sec[SEC_SYMBOLS], zeros, 3);
        put_i32(&e.sec[SEC_SYMBOLS], m->symbol_info[i].column);
    }
    enc_tensors(&e, m);
    MtrStatus st = enc_programs(&e, m, err);
    if (st == MTR_OK) st = enc_knobs(&e, m, err);
    if (st == MTR_OK) enc_columns_tasks(&e, m);
    if (st == MTR_OK && m->trained) st = enc_trained(&e, m, err);
    if (st == MTR_OK) st = enc_assemble(&e, m->trained != 0, buf, len, err);
    for (int k = 0; k < SEC_END; k++) free(e.sec[k].p);
    return st;
}

/* ---------------------------------------------------------------- decoding */

/* A cursor over one section of the file. pos and end are absolute file offsets,
 * so that every message can give the offset of the offending field. */
typedef struct {
    const uint8_t *buf;
    size_t pos, start, end;
    const char *sec;
    const char *what;
    MtrError *err;
    MtrStatus status;
    const uint8_t *strs; /* the string table */
    size_t n_strs;
    MtrModel *m;
} Rd;

static int bad_at(Rd *r, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records a format error at file offset `at` and returns -1. */
static int bad_at(Rd *r, size_t at, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->status = mtr_fail(r->err, MTR_E_FORMAT, "%s: section '%s' at offset %zu: %s", r->what,
                         r->sec, at, msg);
    return -1;
}

static int nomem(Rd *r)
{
    r->status = mtr_fail(r->err, MTR_E_NOMEM, "%s: section '%s': out of memory", r->what, r->sec);
    return -1;
}

static int rd_bytes(Rd *r, size_t n, const uint8_t **p)
{
    if (n > r->end - r->pos)
        return bad_at(r, r->pos, "truncated: needs %zu bytes, %zu left", n, r->end - r->pos);
    *p = r->buf + r->pos;
    r->pos += n;
    return 0;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int rd_u8(Rd *r, uint8_t *v)
{
    const uint8_t *p = NULL;
    if (rd_bytes(r, 1, &p)) return -1;
    *v = p[0];
    return 0;
}

static int rd_u16(Rd *r, uint16_t *v)
{
    const uint8_t *p = NULL;
    if (rd_bytes(r, 2, &p)) return -1;
    *v = (uint16_t)(p[0] | p[1] << 8);
    return 0;
}

static int rd_u32(Rd *r, uint32_t *v)
{
    const uint8_t *p = NULL;
    if (rd_bytes(r, 4, &p)) return -1;
    *v = le32(p);
    return 0;
}

static int rd_i32(Rd *r, int32_t *v)
{
    uint32_t u;
    if (rd_u32(r, &u)) return -1;
    *v = (int32_t)u;
    return 0;
}

static int rd_u64(Rd *r, uint64_t *v)
{
    const uint8_t *p = NULL;
    if (rd_bytes(r, 8, &p)) return -1;
    *v = le64(p);
    return 0;
}

static int rd_f32(Rd *r, float *v)
{
    uint32_t u;
    if (rd_u32(r, &u)) return -1;
    memcpy(v, &u, 4);
    return 0;
}

/* Reads a reserved field of n bytes (n <= 8) that must be zero. */
static int rd_zero(Rd *r, size_t n)
{
    size_t at = r->pos;
    const uint8_t *p = NULL;
    if (rd_bytes(r, n, &p)) return -1;
    if (memcmp(p, zeros, n) != 0) return bad_at(r, at, "reserved bytes are not zero");
    return 0;
}

/* Checks that `count` records of at least `size` bytes fit in what is left,
 * before anything is allocated for them. */
static int need(Rd *r, uint64_t count, uint64_t size, const char *what)
{
    uint64_t left = r->end - r->pos;
    if (count > left / size)
        return bad_at(r, r->pos, "%llu %s need at least %llu bytes each, only %llu bytes left",
                      (unsigned long long)count, what, (unsigned long long)size,
                      (unsigned long long)left);
    return 0;
}

/* Reads a string reference and copies the NUL-terminated string it names. */
static int rd_str(Rd *r, char **out)
{
    size_t at = r->pos;
    uint32_t off;
    if (rd_u32(r, &off)) return -1;
    if (off >= r->n_strs)
        return bad_at(r, at, "string offset %u outside the string table (%zu bytes)", off,
                      r->n_strs);
    const uint8_t *nul = memchr(r->strs + off, 0, r->n_strs - off);
    if (!nul) return bad_at(r, at, "string at offset %u is not NUL-terminated", off);
    size_t n = (size_t)(nul - (r->strs + off));
    char *s = malloc(n + 1);
    if (!s) return nomem(r);
    memcpy(s, r->strs + off, n + 1);
    *out = s;
    return 0;
}

/* A section ends with fewer than 8 zero bytes of padding. */
static int finish(Rd *r)
{
    size_t left = r->end - r->pos;
    if (left >= 8) return bad_at(r, r->pos, "%zu unexpected bytes at the end", left);
    return rd_zero(r, left);
}

static int check_id(Rd *r, size_t at, int32_t v, uint32_t n, int allow_none, const char *what)
{
    if ((allow_none && v == -1) || (v >= 0 && (uint32_t)v < n)) return 0;
    return bad_at(r, at, "%s %d out of range (%u of them)", what, v, n);
}

static void *alloc_array(Rd *r, uint32_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) nomem(r);
    return p;
}

static int dec_model(Rd *r)
{
    if (rd_str(r, &r->m->name)) return -1;
    if (rd_zero(r, 4)) return -1;
    return finish(r);
}

static int dec_symbols(Rd *r)
{
    MtrModel *m = r->m;
    uint32_t n;
    if (rd_u32(r, &n) || need(r, n, SYMBOL_SIZE, "symbols")) return -1;
    if (!(m->symbols = alloc_array(r, n, sizeof(char *)))) return -1;
    if (!(m->symbol_info = alloc_array(r, n, sizeof(MtrSymbol)))) return -1;
    m->n_symbols = n;
    for (uint32_t i = 0; i < n; i++) {
        MtrSymbol *s = &m->symbol_info[i];
        size_t at = r->pos;
        if (rd_u8(r, &s->kind) || rd_zero(r, 3) || rd_i32(r, &s->column)) return -1;
        if (!strcmp(mtr_symbol_kind_name(s->kind), "?"))
            return bad_at(r, at, "symbol %u has unknown kind %u", i, s->kind);
        for (uint32_t j = 0; j < i; j++)
            if (m->symbol_info[j].kind == s->kind && m->symbol_info[j].column == s->column)
                return bad_at(r, at, "symbol %u repeats symbol %u", i, j);
    }
    return finish(r); /* the columns are checked, and the names made, with the columns */
}

static int dec_knobs(Rd *r)
{
    MtrModel *m = r->m;
    uint32_t n;
    if (rd_u32(r, &n) || need(r, n, KNOB_SIZE, "knobs")) return -1;
    if (!(m->knobs = alloc_array(r, n, sizeof(MtrKnob)))) return -1;
    m->n_knobs = n;
    for (uint32_t i = 0; i < n; i++) {
        MtrKnob *k = &m->knobs[i];
        size_t kat = r->pos;
        if (rd_str(r, &k->name) || rd_u8(r, &k->type) || rd_zero(r, 1) || rd_u16(r, &k->kind))
            return -1;
        if (!mtr_knob_info(k->kind))
            return bad_at(r, kat + 6, "knob '%s' has unknown kind %u", k->name, k->kind);
        if (mtr_knob_info(k->kind)->type != k->type)
            return bad_at(r, kat + 4, "knob '%s' has type %u, its kind %u", k->name, k->type,
                          mtr_knob_info(k->kind)->type);
        size_t at = r->pos;
        if (k->type == MTR_KNOB_F32) {
            float f;
            if (rd_f32(r, &f)) return -1;
            if (!isfinite(f)) return bad_at(r, at, "knob '%s' value is not finite", k->name);
            k->value = f;
        } else if (k->type == MTR_KNOB_I32) {
            int32_t v;
            if (rd_i32(r, &v)) return -1;
            k->value = v;
        } else {
            return bad_at(r, at - 4, "knob '%s' has unknown type %u", k->name, k->type);
        }
        char rule[64];
        if (mtr_knob_check(k->kind, k->value, rule, sizeof rule))
            return bad_at(r, at, "knob '%s' is %g, but %s", k->name, k->value, rule);
    }
    return finish(r);
}

/* The feature records after the columns (none in a file from before them,
 * whose section ends in padding). */
static int dec_features(Rd *r)
{
    MtrModel *m = r->m;
    uint32_t n = 0;
    if (r->end - r->pos >= 4 && rd_u32(r, &n)) return -1;
    if (need(r, n, 28, "features")) return -1;
    for (uint32_t i = 0; i < n; i++) {
        size_t at = r->pos;
        int32_t col;
        uint8_t kind, tokens, is_list;
        if (rd_i32(r, &col)) return -1;
        if (col < 0 || (uint32_t)col >= m->n_columns || m->columns[col].feature)
            return bad_at(r, at, "feature %u names column %d (out of range or twice)", i, col);
        MtrColumn *c = &m->columns[col];
        if (rd_u8(r, &kind) || rd_u8(r, &tokens) || rd_u8(r, &is_list) || rd_zero(r, 1) ||
            rd_i32(r, &c->feature_of) || rd_i32(r, &c->feature_arg) || rd_u32(r, &c->max_len) ||
            rd_u32(r, &c->n_stats))
            return -1;
        int known = 0;
#define X(E, nm, id, ids) known |= kind == id;
#include "mtr/features.def"
#undef X
        if (!known || tokens > 1 || is_list > 1 || (tokens && !is_list))
            return bad_at(r, at + 4, "column '%s' has feature %u (tokens %u, list %u)", c->name,
                          kind, tokens, is_list);
        c->feature = kind;
        c->tokens = tokens;
        c->is_list = is_list;
        if (c->feature_of < 0 || (uint32_t)c->feature_of >= m->n_columns || c->feature_of == col ||
            m->columns[c->feature_of].is_label)
            return bad_at(r, at + 8, "column '%s' is computed from column %d", c->name,
                          c->feature_of);
        if (c->is_label || c->derived_from >= 0 || c->max_len > 4096 ||
            (c->lookup != (kind == MTR_FEAT_LOOKUP)) ||
            ((kind == MTR_FEAT_HASH || kind == MTR_FEAT_DISCRETIZE) && c->feature_arg < 1) ||
            (kind == MTR_FEAT_BUCKETIZE &&
             (c->feature_arg < 1 || (uint32_t)c->feature_arg != c->n_stats)) ||
            (kind == MTR_FEAT_NORMALIZE && (c->is_list || (c->n_stats != 0 && c->n_stats != 2))) ||
            (kind == MTR_FEAT_DISCRETIZE && c->n_stats != 0 &&
             c->n_stats != (uint32_t)c->feature_arg - 1))
            return bad_at(r, at, "column '%s': its feature's settings do not fit together",
                          c->name);
        if (need(r, c->n_stats, 4, "statistics")) return -1;
        if (c->n_stats && !(c->stats = malloc(c->n_stats * sizeof *c->stats))) return nomem(r);
        for (uint32_t k = 0; k < c->n_stats; k++) {
            at = r->pos;
            if (rd_f32(r, &c->stats[k])) return -1;
            if (!isfinite(c->stats[k]) ||
                (kind != MTR_FEAT_NORMALIZE && k > 0 && c->stats[k] < c->stats[k - 1]) ||
                (kind == MTR_FEAT_NORMALIZE && k == 1 && c->stats[k] < 0))
                return bad_at(r, at, "column '%s' has a bad statistic", c->name);
        }
        uint32_t lists;
        at = r->pos;
        if (rd_u32(r, &lists)) return -1;
        uint64_t total = (uint64_t)lists * c->max_len;
        if (lists && (!is_list || !c->max_len))
            return bad_at(r, at, "column '%s' has item lists but is no list", c->name);
        if (need(r, total, 4, "item list ids")) return -1;
        if (total && !(c->item_lists = malloc((size_t)total * sizeof *c->item_lists)))
            return nomem(r);
        c->n_item_lists = lists;
        for (uint64_t k = 0; k < total; k++) {
            at = r->pos;
            if (rd_i32(r, &c->item_lists[k])) return -1;
            if (c->item_lists[k] < -1)
                return bad_at(r, at, "column '%s' has item id %d", c->name, c->item_lists[k]);
        }
    }
    return 0;
}

/* The side tables after the features (none in a file from before them). */
static int dec_sides(Rd *r)
{
    MtrModel *m = r->m;
    uint32_t n = 0;
    if (r->end - r->pos >= 4 && rd_u32(r, &n)) return -1;
    if (need(r, n, 12, "side tables")) return -1;
    if (n && !(m->sides = calloc(n, sizeof *m->sides))) return nomem(r);
    for (uint32_t s = 0; s < n; s++) {
        MtrSideTable *st = &m->sides[s];
        m->n_sides = s + 1;
        size_t at = r->pos;
        if (rd_i32(r, &st->key) || rd_u32(r, &st->n_columns)) return -1;
        if (st->key < 0 || (uint32_t)st->key >= m->n_columns || st->n_columns == 0 ||
            st->n_columns >= m->n_columns)
            return bad_at(r, at, "side table %u has key %d and %u columns", s, st->key,
                          st->n_columns);
        if (need(r, st->n_columns, 4, "side columns")) return -1;
        if (!(st->columns = malloc(st->n_columns * sizeof *st->columns))) return nomem(r);
        for (uint32_t c = 0; c < st->n_columns; c++) {
            at = r->pos;
            if (rd_i32(r, &st->columns[c])) return -1;
            int32_t col = st->columns[c];
            if (col < 0 || (uint32_t)col >= m->n_columns || col == st->key ||
                m->columns[col].is_label || m->columns[col].feature)
                return bad_at(r, at, "side table %u names column %d", s, col);
        }
        at = r->pos;
        uint32_t rows;
        if (rd_u32(r, &rows)) return -1;
        uint64_t total = (uint64_t)rows * (1 + st->n_columns);
        if (need(r, total, 4, "side values")) return -1;
        if (total && !(st->values = calloc((size_t)total, sizeof *st->values))) return nomem(r);
        st->n_rows = rows;
        for (uint64_t i = 0; i < total; i++)
            if (rd_str(r, &st->values[i])) return -1;
    }
    return 0;
}

static int dec_columns(Rd *r)
{
    MtrModel *m = r->m;
    uint32_t n;
    if (rd_u32(r, &n) || need(r, n, COLUMN_SIZE, "columns")) return -1;
    if (!(m->columns = alloc_array(r, n, sizeof(MtrColumn)))) return -1;
    m->n_columns = n;
    for (uint32_t i = 0; i < n; i++) {
        MtrColumn *c = &m->columns[i];
        size_t at = r->pos;
        if (rd_str(r, &c->name) || rd_u8(r, &c->type) || rd_u8(r, &c->is_label) ||
            rd_u8(r, &c->lookup) || rd_u8(r, &c->is_item))
            return -1;
        if (c->type < MTR_COL_STRING || c->type > MTR_COL_FLOAT)
            return bad_at(r, at + 4, "column '%s' has unknown type %u", c->name, c->type);
        if (c->is_label > 1 || c->lookup > 1 || c->is_item > 1)
            return bad_at(r, at + 5, "column '%s' has a flag other than 0 or 1", c->name);
        at = r->pos;
        if (rd_i32(r, &c->vocab_sym) || check_id(r, at, c->vocab_sym, m->n_symbols, 1, "symbol"))
            return -1;
        at = r->pos;
        if (rd_i32(r, &c->derived_from) || rd_u8(r, &c->compare) || rd_u8(r, &c->is_user) ||
            rd_zero(r, 2) || rd_f32(r, &c->threshold))
            return -1;
        if (c->is_user > 1 || (c->is_user && (!c->lookup || c->is_label || c->is_item)))
            return bad_at(r, at + 5, "column '%s' names the user but is not a looked-up input",
                          c->name);
        for (uint32_t k = 0; c->is_user && k < i; k++)
            if (m->columns[k].is_user)
                return bad_at(r, at + 5, "columns '%s' and '%s' both name the user",
                              m->columns[k].name, c->name);
        if (c->derived_from < -1 || c->derived_from >= (int32_t)n || c->derived_from == (int32_t)i)
            return bad_at(r, at, "column '%s' is derived from column %d", c->name, c->derived_from);
        if ((c->derived_from >= 0) != (c->compare != MTR_CMP_NONE) ||
            (c->compare && !strcmp(mtr_compare_text(c->compare), "?")))
            return bad_at(r, at + 4, "column '%s' has comparison %u", c->name, c->compare);
        if (c->derived_from >= 0 &&
            (!c->is_label || c->type != MTR_COL_FLOAT || c->lookup || !isfinite(c->threshold)))
            return bad_at(r, at,
                          "column '%s' is derived but not a float label with a finite "
                          "threshold",
                          c->name);
    }
    for (uint32_t i = 0; i < n; i++) {
        int32_t from = m->columns[i].derived_from;
        if (from >= 0 &&
            (m->columns[from].type == MTR_COL_STRING || m->columns[from].derived_from >= 0))
            return bad_at(
                r, r->start,
                "column '%s' is derived from '%s', which is not a number column of the data",
                m->columns[i].name, m->columns[from].name);
    }
    if (dec_features(r)) return -1;
    if (dec_sides(r)) return -1;
    if (finish(r)) return -1;
    /* The symbols, read before the columns, name their column only when their
     * kind is per column; their printed names are made now. */
    for (uint32_t i = 0; i < m->n_symbols; i++) {
        const MtrSymbol *s = &m->symbol_info[i];
        int per_column = 0;
        switch (s->kind) {
#define X(E, nm, id, pc)                                                                           \
    case id:                                                                                       \
        per_column = pc;                                                                           \
        break;
#include "mtr/symbols.def"
#undef X
        default:
            break;
        }
        if (per_column ? s->column < 0 || (uint32_t)s->column >= n : s->column != -1)
            return bad_at(r, r->start, "symbol %u (%s) has column %d", i,
                          mtr_symbol_kind_name(s->kind), s->column);
        if (!(m->symbols[i] = mtr_symbol_name_make(m, i))) return nomem(r);
    }
    return 0;
}

static int dec_dim(Rd *r, MtrTensor *t, int d)
{
    size_t at = r->pos;
    if (rd_i32(r, &t->dim[d].sym) || rd_i32(r, &t->dim[d].k)) return -1;
    if (d >= t->rank) {
        if (t->dim[d].sym != -1 || t->dim[d].k != 1)
            return bad_at(r, at, "tensor '%s' dimension %d beyond its rank is not (-1, 1)", t->name,
                          d);
        return 0;
    }
    if (check_id(r, at, t->dim[d].sym, r->m->n_symbols, 1, "symbol")) return -1;
    if (t->dim[d].k < 1)
        return bad_at(r, at + 4, "tensor '%s' dimension %d has factor %d", t->name, d, t->dim[d].k);
    return 0;
}

static int dec_tensors(Rd *r)
{
    MtrModel *m = r->m;
    uint32_t n;
    if (rd_u32(r, &n) || need(r, n, TENSOR_SIZE, "tensors")) return -1;
    if (!(m->tensors = alloc_array(r, n, sizeof(MtrTensor)))) return -1;
    m->n_tensors = n;
    for (uint32_t i = 0; i < n; i++) {
        MtrTensor *t = &m->tensors[i];
        size_t at = r->pos;
        if (rd_str(r, &t->name) || rd_u8(r, &t->dtype) || rd_u8(r, &t->role) ||
            rd_u8(r, &t->rank) || rd_u8(r, &t->init) || rd_f32(r, &t->init_arg))
            return -1;
        if (t->dtype != MTR_DT_F32 && t->dtype != MTR_DT_I32)
            return bad_at(r, at + 4, "tensor '%s' has unknown dtype %u", t->name, t->dtype);
        if (t->role > MTR_ROLE_STATE)
            return bad_at(r, at + 5, "tensor '%s' has unknown role %u", t->name, t->role);
        if (t->rank > MTR_MAX_RANK)
            return bad_at(r, at + 6, "tensor '%s' has rank %u", t->name, t->rank);
        if (t->init > MTR_INIT_KNOB)
            return bad_at(r, at + 7, "tensor '%s' has unknown init %u", t->name, t->init);
        if (!isfinite(t->init_arg))
            return bad_at(r, at + 8, "tensor '%s' init argument is not finite", t->name);
        if (t->init == MTR_INIT_KNOB && (t->init_arg < 0 || t->init_arg >= (float)m->n_knobs ||
                                         t->init_arg != floorf(t->init_arg)))
            return bad_at(r, at + 8, "tensor '%s' init knob %g is not a knob", t->name,
                          (double)t->init_arg);
        for (int d = 0; d < MTR_MAX_RANK; d++)
            if (dec_dim(r, t, d)) return -1;
        size_t sat = r->pos;
        if (rd_u8(r, &t->source) || rd_zero(r, 3) || rd_i32(r, &t->source_column)) return -1;
        if ((t->role == MTR_ROLE_INPUT) != (t->source != MTR_SRC_NONE) ||
            (t->source && !strcmp(mtr_source_name(t->source), "?")))
            return bad_at(r, sat, "tensor '%s' (role %u) has source %u", t->name, t->role,
                          t->source);
        if (check_id(r, sat + 4, t->source_column, m->n_columns, !t->source, "source column"))
            return -1;
        if (!t->source && t->source_column != -1)
            return bad_at(r, sat + 4, "tensor '%s' is no input but names source column %d", t->name,
                          t->source_column);
    }
    return finish(r);
}

static int dec_op(Rd *r, const MtrProgram *pr, uint32_t i)
{
    MtrModel *m = r->m;
    MtrOp *op = &pr->ops[i];
    size_t at = r->pos;
    uint16_t id;
    uint8_t n_in, n_out;
    if (rd_u16(r, &id) || rd_u8(r, &n_in) || rd_u8(r, &n_out)) return -1;
    if (op_from_id(id, &op->kind) != 0)
        return bad_at(r, at, "program '%s' op %u: unknown op id %u", pr->name, i, id);
    const OpInfo *info = op_info(op->kind);
    if (n_in != info->n_in || n_out != info->n_out)
        return bad_at(r, at + 2,
                      "program '%s' op %u (%s): %u inputs and %u outputs, expected %u and %u",
                      pr->name, i, info->name, n_in, n_out, info->n_in, info->n_out);
    for (int k = 0; k < MTR_MAX_IN; k++) op->in[k] = -1;
    for (int k = 0; k < MTR_MAX_OUT; k++) op->out[k] = -1;
    for (int k = 0; k < n_in + n_out; k++) {
        size_t tat = r->pos;
        int32_t *slot = k < n_in ? &op->in[k] : &op->out[k - n_in];
        if (rd_i32(r, slot) || check_id(r, tat, *slot, m->n_tensors, 0, "tensor")) return -1;
    }
    size_t iat = r->pos;
    for (int k = 0; k < MTR_MAX_IATTR; k++)
        if (rd_i32(r, &op->iattr[k])) return -1;
    for (int k = 0; k < op_info(op->kind)->n_knobs; k++)
        if (check_id(r, iat + 4 * (size_t)k, op->iattr[k], m->n_knobs, 0, "knob")) return -1;
    for (int k = 0; k < MTR_MAX_FATTR; k++)
        if (rd_f32(r, &op->fattr[k])) return -1;
    return 0;
}

static int dec_outputs(Rd *r, MtrProgram *pr, uint32_t n)
{
    MtrModel *m = r->m;
    if (need(r, n, OUTPUT_SIZE, "outputs")) return -1;
    if (!(pr->outputs = alloc_array(r, n, sizeof(MtrOutput)))) return -1;
    pr->n_outputs = n;
    for (uint32_t i = 0; i < n; i++) {
        MtrOutput *o = &pr->outputs[i];
        size_t at = r->pos;
        if (rd_u8(r, &o->role) || rd_zero(r, 3) || rd_i32(r, &o->task) || rd_i32(r, &o->tensor) ||
            rd_i32(r, &o->param))
            return -1;
        int per_task = -1;
        switch (o->role) {
#define X(E, nm, id, pt, what)                                                                     \
    case id:                                                                                       \
        per_task = pt;                                                                             \
        break;
#include "mtr/outputs.def"
#undef X
        default:
            return bad_at(r, at, "program '%s' output %u has unknown role %u", pr->name, i,
                          o->role);
        }
        if (per_task ? check_id(r, at + 4, o->task, m->n_tasks, 0, "task")
                     : (o->task != -1 ? bad_at(r, at + 4, "output %u names a task", i) : 0))
            return -1;
        if (check_id(r, at + 8, o->tensor, m->n_tensors, 0, "output tensor")) return -1;
        int is_grad = o->role == MTR_OUT_GRADIENT || o->role == MTR_OUT_GRADIENT_ROWS ||
                      o->role == MTR_OUT_GRADIENT_IDS;
        if (check_id(r, at + 12, o->param, m->n_tensors, !is_grad, "gradient parameter")) return -1;
        if (is_grad ? m->tensors[o->param].role != MTR_ROLE_PARAM : o->param != -1)
            return bad_at(r, at + 12, "program '%s' output %u: parameter %d", pr->name, i,
                          o->param);
    }
    return 0;
}

static int dec_programs(Rd *r)
{
    MtrModel *m = r->m;
    uint32_t n;
    if (rd_u32(r, &n) || need(r, n, PROGRAM_SIZE, "programs")) return -1;
    if (!(m->programs = alloc_array(r, n, sizeof(MtrProgram)))) return -1;
    m->n_programs = n;
    for (uint32_t p = 0; p < n; p++) {
        MtrProgram *pr = &m->programs[p];
        uint32_t n_ops, n_lt, n_out;
        size_t pat = r->pos;
        if (rd_u8(r, &pr->kind) || rd_zero(r, 3) || rd_u32(r, &n_ops) || rd_u32(r, &n_lt) ||
            rd_u32(r, &n_out) || rd_u32(r, &pr->update_at))
            return -1;
        if (!strcmp(mtr_program_kind_name(pr->kind), "?"))
            return bad_at(r, pat, "program %u has unknown kind %u", p, pr->kind);
        for (uint32_t q = 0; q < p; q++)
            if (m->programs[q].kind == pr->kind)
                return bad_at(r, pat, "program '%s' appears twice",
                              mtr_program_kind_name(pr->kind));
        size_t nl = strlen(mtr_program_kind_name(pr->kind)) + 1;
        if (!(pr->name = malloc(nl))) return nomem(r);
        memcpy(pr->name, mtr_program_kind_name(pr->kind), nl);
        if (pr->update_at > n_ops)
            return bad_at(r, pat + 16, "program '%s': update boundary %u beyond its %u ops",
                          pr->name, pr->update_at, n_ops);
        if (need(r, n_ops, OP_MIN_SIZE, "ops")) return -1;
        if (!(pr->ops = alloc_array(r, n_ops, sizeof(MtrOp)))) return -1;
        pr->n_ops = n_ops;
        for (uint32_t i = 0; i < n_ops; i++)
            if (dec_op(r, pr, i)) return -1;
        if (need(r, n_lt, LIFETIME_SIZE, "lifetimes")) return -1;
        if (!(pr->lifetimes = alloc_array(r, n_lt, sizeof(MtrLifetime)))) return -1;
        pr->n_lifetimes = n_lt;
        for (uint32_t i = 0; i < n_lt; i++) {
            MtrLifetime *lt = &pr->lifetimes[i];
            size_t at = r->pos;
            if (rd_i32(r, &lt->tensor) || rd_i32(r, &lt->first) || rd_i32(r, &lt->last) ||
                rd_i32(r, &lt->alias))
                return -1;
            if (check_id(r, at, lt->tensor, m->n_tensors, 0, "lifetime tensor") ||
                check_id(r, at + 12, lt->alias, m->n_tensors, 1, "lifetime alias"))
                return -1;
            if (lt->first < 0 || lt->first > lt->last || (uint32_t)lt->last >= n_ops)
                return bad_at(r, at + 4, "program '%s' lifetime %u: ops %d..%d outside 0..%u",
                              pr->name, i, lt->first, lt->last, n_ops);
        }
        for (uint32_t i = pr->update_at; i < n_ops; i++)
            if (!(op_info(pr->ops[i].kind)->flags & OPF_UPDATE))
                return bad_at(r, pat + 16,
                              "program '%s': op %u (%s) after the update boundary "
                              "is not an update",
                              pr->name, i, op_info(pr->ops[i].kind)->name);
        if (dec_outputs(r, pr, n_out)) return -1;
    }
    return finish(r);
}

static int dec_tasks(Rd *r)
{
    MtrModel *m = r->m;
    uint32_t n;
    if (rd_u32(r, &n) || need(r, n, TASK_SIZE, "tasks")) return -1;
    if (!(m->tasks = alloc_array(r, n, sizeof(MtrTask)))) return -1;
    m->n_tasks = n;
    for (uint32_t i = 0; i < n; i++) {
        MtrTask *t = &m->tasks[i];
        size_t at = r->pos;
        if (rd_str(r, &t->name) || rd_str(r, &t->about) || rd_u32(r, &t->metrics) ||
            rd_u32(r, &t->n_ks))
            return -1;
        if (t->metrics >> MTR_METRIC_COUNT)
            return bad_at(r, at + 8, "task '%s' has unknown metric bits 0x%x", t->name, t->metrics);
        if (t->n_ks > MTR_MAX_KS)
            return bad_at(r, at + 12, "task '%s' has %u top-k cut-offs, at most %d", t->name,
                          t->n_ks, MTR_MAX_KS);
        for (uint32_t k = 0; k < MTR_MAX_KS; k++) {
            size_t kat = r->pos;
            if (rd_i32(r, &t->ks[k])) return -1;
            if (k >= t->n_ks ? t->ks[k] != 0
                             : (t->ks[k] < 1 || (k > 0 && t->ks[k] <= t->ks[k - 1])))
                return bad_at(r, kat, "task '%s' top-k cut-off %u is %d", t->name, k, t->ks[k]);
        }
        at = r->pos;
        if (rd_i32(r, &t->weight_knob) || rd_i32(r, &t->label_column) ||
            rd_i32(r, &t->loss_metric) || rd_i32(r, &t->sample_knob))
            return -1;
        if (check_id(r, at + 12, t->sample_knob, m->n_knobs, 1, "sample knob")) return -1;
        if (t->sample_knob >= 0 &&
            (m->knobs[t->sample_knob].kind != MTR_KNOB_SAMPLE || t->label_column < 0))
            return bad_at(r, at + 12, "task '%s': knob %d is not a sample of its label", t->name,
                          t->sample_knob);
        if (t->loss_metric < -1 || t->loss_metric >= MTR_METRIC_COUNT)
            return bad_at(r, at + 8, "task '%s' has loss metric %d", t->name, t->loss_metric);
        if (check_id(r, at, t->weight_knob, m->n_knobs, 0, "weight knob") ||
            check_id(r, at + 4, t->label_column, m->n_columns, 1, "label column"))
            return -1;
        if (t->label_column >= 0 && !m->columns[t->label_column].is_label)
            return bad_at(r, at + 4, "task '%s': column '%s' is not a label", t->name,
                          m->columns[t->label_column].name);
    }
    return finish(r);
}

static int dec_bindings(Rd *r)
{
    MtrModel *m = r->m;
    size_t at = r->pos;
    uint32_t n;
    if (rd_u32(r, &n) || rd_zero(r, 4)) return -1;
    if (n != m->n_symbols) return bad_at(r, at, "%u values for %u symbols", n, m->n_symbols);
    if (need(r, n, 8, "values")) return -1;
    if (!(m->symbol_values = alloc_array(r, n, sizeof(int64_t)))) return -1;
    for (uint32_t i = 0; i < n; i++) {
        at = r->pos;
        uint64_t v;
        if (rd_u64(r, &v)) return -1;
        if (v > INT64_MAX)
            return bad_at(r, at, "symbol '%s' is bound to a negative value", m->symbols[i]);
        m->symbol_values[i] = (int64_t)v;
    }
    return finish(r);
}

static int dec_params(Rd *r)
{
    MtrModel *m = r->m;
    size_t at = r->pos;
    uint32_t n, n_saved = 0;
    if (rd_u32(r, &n) || rd_zero(r, 4)) return -1;
    for (uint32_t i = 0; i < m->n_tensors; i++) n_saved += is_saved(&m->tensors[i]);
    if (n != n_saved) return bad_at(r, at, "%u parameters stored, the model has %u", n, n_saved);
    if (!(m->param_data = alloc_array(r, m->n_tensors, sizeof(float *)))) return -1;
    int64_t prev = -1;
    for (uint32_t p = 0; p < n; p++) {
        at = r->pos;
        uint32_t id;
        uint64_t count;
        if (rd_u32(r, &id) || rd_zero(r, 4) || rd_u64(r, &count)) return -1;
        if (id >= m->n_tensors || (int64_t)id <= prev)
            return bad_at(r, at, "parameter tensor %u out of range or out of order", id);
        prev = id;
        const MtrTensor *t = &m->tensors[id];
        if (!is_saved(t))
            return bad_at(r, at, "tensor '%s' is not a parameter or optimizer state", t->name);
        int64_t elems = mtr_tensor_elems(t, m->symbol_values);
        if (elems < 0 || (uint64_t)elems != count)
            return bad_at(r, at + 8, "parameter '%s' has %llu elements, its bound shape %lld",
                          t->name, (unsigned long long)count, (long long)elems);
        if (need(r, count, 4, "elements")) return -1;
        float *d = malloc(count ? (size_t)count * sizeof(float) : 1);
        if (!d) return nomem(r);
        m->param_data[id] = d;
        const uint8_t *src = NULL;
        if (rd_bytes(r, (size_t)count * 4, &src)) return -1;
        for (uint64_t k = 0; k < count; k++) {
            uint32_t u = le32(src + 4 * k);
            memcpy(&d[k], &u, 4);
        }
        if (rd_zero(r, (8 - (r->pos - r->start) % 8) % 8)) return -1;
    }
    return finish(r);
}

static int dec_vocabs(Rd *r)
{
    MtrModel *m = r->m;
    uint32_t n;
    if (rd_u32(r, &n) || need(r, n, 8, "vocabularies")) return -1;
    if (!(m->vocabs = alloc_array(r, n, sizeof(MtrVocab)))) return -1;
    m->n_vocabs = n;
    for (uint32_t v = 0; v < n; v++) {
        MtrVocab *voc = &m->vocabs[v];
        size_t at = r->pos;
        uint32_t n_words;
        if (rd_i32(r, &voc->column) || check_id(r, at, voc->column, m->n_columns, 0, "column"))
            return -1;
        const MtrColumn *col = &m->columns[voc->column];
        if (!col->lookup)
            return bad_at(r, at, "column '%s' has a vocabulary but is not looked up", col->name);
        for (uint32_t u = 0; u < v; u++)
            if (m->vocabs[u].column == voc->column)
                return bad_at(r, at, "column '%s' has two vocabularies", col->name);
        if (rd_u32(r, &n_words) || need(r, n_words, 4, "words")) return -1;
        if (col->vocab_sym >= 0 && m->symbol_values[col->vocab_sym] != (int64_t)n_words + 1)
            return bad_at(r, at + 4,
                          "column '%s' has %u words but symbol '%s' is bound to %lld "
                          "(words + 1)",
                          col->name, n_words, m->symbols[col->vocab_sym],
                          (long long)m->symbol_values[col->vocab_sym]);
        if (!(voc->words = alloc_array(r, n_words, sizeof(char *)))) return -1;
        voc->n = n_words;
        for (uint32_t i = 0; i < n_words; i++) {
            size_t wat = r->pos;
            if (rd_str(r, &voc->words[i])) return -1;
            if (i > 0 && strcmp(voc->words[i - 1], voc->words[i]) >= 0)
                return bad_at(r, wat, "vocabulary of '%s': word %u is not after word %u", col->name,
                              i, i - 1);
        }
    }
    return finish(r);
}

static const MtrVocab *find_vocab(const MtrModel *m, int32_t column)
{
    for (uint32_t v = 0; v < m->n_vocabs; v++)
        if (m->vocabs[v].column == column) return &m->vocabs[v];
    return NULL;
}

static int dec_items(Rd *r)
{
    MtrModel *m = r->m;
    MtrItems *it = &m->items;
    size_t at = r->pos;
    uint32_t n, n_cols;
    if (rd_u32(r, &n) || rd_u32(r, &n_cols) || need(r, n_cols, 4, "item columns")) return -1;
    int sym = mtr_model_symbol(m, MTR_SYM_ITEMS, -1);
    if (sym >= 0 && m->symbol_values[sym] != (int64_t)n)
        return bad_at(r, at, "%u items but symbol 'items' is bound to %lld", n,
                      (long long)m->symbol_values[sym]);
    if (!(it->columns = alloc_array(r, n_cols, sizeof(int32_t)))) return -1;
    if (!(it->ids = alloc_array(r, n_cols, sizeof(int32_t *)))) return -1;
    it->n_columns = n_cols;
    for (uint32_t c = 0; c < n_cols; c++) {
        size_t cat = r->pos;
        if (rd_i32(r, &it->columns[c]) ||
            check_id(r, cat, it->columns[c], m->n_columns, 0, "column"))
            return -1;
        const MtrColumn *ic = &m->columns[it->columns[c]];
        if (!find_vocab(m, it->columns[c]) && !(ic->feature && !ic->is_list && !ic->lookup))
            return bad_at(r, cat, "item column '%s' has no vocabulary",
                          m->columns[it->columns[c]].name);
        for (uint32_t u = 0; u < c; u++)
            if (it->columns[u] == it->columns[c])
                return bad_at(r, cat, "item column %d listed twice", it->columns[c]);
    }
    if (need(r, n, 4, "item labels")) return -1;
    if (!(it->labels = alloc_array(r, n, sizeof(char *)))) return -1;
    it->n = n;
    for (uint32_t i = 0; i < n; i++)
        if (rd_str(r, &it->labels[i])) return -1;
    for (uint32_t c = 0; c < n_cols; c++) {
        const MtrVocab *voc = find_vocab(m, it->columns[c]);
        if (need(r, n, 4, "item ids")) return -1;
        if (!(it->ids[c] = alloc_array(r, n, sizeof(int32_t)))) return -1;
        for (uint32_t i = 0; i < n; i++) {
            size_t iat = r->pos;
            if (rd_i32(r, &it->ids[c][i])) return -1;
            /* a hashed or bucketized item feature: any id (gather clamps) */
            if (it->ids[c][i] < 0 || (voc && (uint32_t)it->ids[c][i] > voc->n))
                return bad_at(r, iat, "item %u: id %d outside vocabulary of %u words", i,
                              it->ids[c][i], voc->n);
        }
    }
    return finish(r);
}

typedef struct {
    uint64_t offset, size;
} Extent;

/* Checks header, section table and every checksum; fills ext[kind]. */
static int dec_table(Rd *r, size_t len, Extent ext[SEC_END], int *trained)
{
    r->sec = "header";
    if (len < HEADER_SIZE)
        return bad_at(r, len, "file is %zu bytes, shorter than the %d-byte header", len,
                      HEADER_SIZE);
    if (memcmp(r->buf, magic, 8) != 0) return bad_at(r, 0, "not a model.bin file (bad magic)");
    uint32_t n = le32(r->buf + 12);
    if (n > MAX_SECTIONS || n > (len - HEADER_SIZE) / ENTRY_SIZE)
        return bad_at(r, 12, "%u sections do not fit in a file of %zu bytes", n, len);
    uint32_t crc = mtr_crc32_update(0, r->buf, 20);
    crc = mtr_crc32_update(crc, r->buf + HEADER_SIZE, (size_t)ENTRY_SIZE * n);
    if (crc != le32(r->buf + 20))
        return bad_at(r, 20, "header checksum mismatch (stored %08x, computed %08x)",
                      le32(r->buf + 20), crc);
    uint32_t version = le32(r->buf + 8);
    if (version < MTR_FORMAT_VERSION)
        return bad_at(r, 8,
                      "format version %u is older than this build's %d: compile the .mtr again "
                      "with mtrc (and train again)",
                      version, MTR_FORMAT_VERSION);
    if (version != MTR_FORMAT_VERSION)
        return bad_at(r, 8, "format version %u, this build reads version %d", version,
                      MTR_FORMAT_VERSION);
    uint32_t flags = le32(r->buf + 16);
    if (flags & ~FLAG_TRAINED) return bad_at(r, 16, "unknown flags 0x%x", flags);
    *trained = (flags & FLAG_TRAINED) != 0;

    r->sec = "section table";
    uint32_t last = *trained ? SEC_ITEMS : SEC_TASKS;
    uint64_t expect = HEADER_SIZE + (uint64_t)ENTRY_SIZE * n;
    uint32_t prev = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t at = HEADER_SIZE + (size_t)ENTRY_SIZE * i;
        const uint8_t *e = r->buf + at;
        uint32_t kind = le32(e);
        uint64_t off = le64(e + 8), size = le64(e + 16);
        if (kind == 0 || kind >= SEC_END) return bad_at(r, at, "unknown section kind %u", kind);
        if (kind <= prev)
            return bad_at(r, at, "section '%s' duplicated or out of order", section_names[kind]);
        if (kind > last)
            return bad_at(r, at, "section '%s' in a model that is not trained",
                          section_names[kind]);
        if (kind != prev + 1) return bad_at(r, at, "section '%s' missing", section_names[prev + 1]);
        prev = kind;
        if (off != expect)
            return bad_at(r, at + 8, "section '%s' at offset %llu, expected %llu (overlap or gap)",
                          section_names[kind], (unsigned long long)off, (unsigned long long)expect);
        if (size % 8 != 0 || size > len - off)
            return bad_at(r, at + 16,
                          "section '%s' size %llu is not a multiple of 8 or runs past "
                          "the end of the file (%zu bytes)",
                          section_names[kind], (unsigned long long)size, len);
        uint32_t sc = mtr_crc32(r->buf + off, (size_t)size);
        if (sc != le32(e + 4)) {
            r->sec = section_names[kind];
            return bad_at(r, (size_t)off, "checksum mismatch (stored %08x, computed %08x)",
                          le32(e + 4), sc);
        }
        ext[kind].offset = off;
        ext[kind].size = size;
        expect = off + size;
    }
    if (prev != last) return bad_at(r, 12, "section '%s' missing", section_names[prev + 1]);
    if (expect != len)
        return bad_at(r, (size_t)expect, "%llu bytes after the last section",
                      (unsigned long long)(len - expect));
    return 0;
}

MtrStatus mtr_model_decode(const uint8_t *buf, size_t len, const char *what, MtrModel **out,
                           MtrError *err)
{
    *out = NULL;
    Rd r;
    memset(&r, 0, sizeof r);
    r.buf = buf;
    r.what = what ? what : "model.bin";
    r.err = err;
    Extent ext[SEC_END];
    memset(ext, 0, sizeof ext);
    int trained = 0;
    if (dec_table(&r, len, ext, &trained)) return r.status;
    if (!(r.m = mtr_model_new())) return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", r.what);
    r.strs = buf + ext[SEC_STRINGS].offset;
    r.n_strs = (size_t)ext[SEC_STRINGS].size;

    /* Decoded so that each section only refers to sections already read. */
    static int (*const decoders[SEC_END])(Rd *) = {
        [SEC_MODEL] = dec_model,     [SEC_SYMBOLS] = dec_symbols,   [SEC_KNOBS] = dec_knobs,
        [SEC_COLUMNS] = dec_columns, [SEC_TENSORS] = dec_tensors,   [SEC_PROGRAMS] = dec_programs,
        [SEC_TASKS] = dec_tasks,     [SEC_BINDINGS] = dec_bindings, [SEC_PARAMS] = dec_params,
        [SEC_VOCABS] = dec_vocabs,   [SEC_ITEMS] = dec_items,
    };
    static const int order[] = {SEC_MODEL,  SEC_SYMBOLS, SEC_KNOBS,    SEC_COLUMNS,
                                SEC_TASKS,  SEC_TENSORS, SEC_PROGRAMS, SEC_BINDINGS,
                                SEC_PARAMS, SEC_VOCABS,  SEC_ITEMS};
    int n_order = trained ? 11 : 7;
    for (int i = 0; i < n_order; i++) {
        int k = order[i];
        r.sec = section_names[k];
        r.start = r.pos = (size_t)ext[k].offset;
        r.end = (size_t)(ext[k].offset + ext[k].size);
        if (decoders[k](&r)) {
            mtr_model_free(r.m);
            return r.status;
        }
    }
    r.m->trained = trained;
    *out = r.m;
    return MTR_OK;
}

/* ---------------------------------------------------------------- files */

MtrStatus mtr_model_read(const char *path, MtrModel **out, MtrError *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return mtr_fail(err, MTR_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mtr_fail(err, MTR_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX - 1) {
        close(fd);
        return mtr_fail(err, MTR_E_IO, "%s: too large", path);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        close(fd);
        return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory (%zu bytes)", path, len);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t k = read(fd, buf + got, len - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    MtrStatus s;
    if (got != len)
        s = mtr_fail(err, MTR_E_IO, "%s: read %zu of %zu bytes", path, got, len);
    else
        s = mtr_model_decode(buf, len, path, out, err);
    free(buf);
    return s;
}

MtrStatus mtr_model_write(const MtrModel *m, const char *path, MtrError *err)
{
    uint8_t *buf;
    size_t len;
    MtrStatus s = mtr_model_encode(m, &buf, &len, err);
    if (s != MTR_OK) return s;
    s = mtr_save_file(path, buf, len, err);
    free(buf);
    return s;
}

MtrStatus mtr_model_change_file(const char *path, MtrModelChange change, void *ctx, MtrError *err)
{
    MtrModel *m;
    MtrSave save;
    MtrStatus s = mtr_save_lock(&save, path, err);
    if (s != MTR_OK) return s;
    if ((s = mtr_model_read(path, &m, err)) != MTR_OK) {
        mtr_save_abort(&save);
        return s;
    }
    s = change(m, ctx, err);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (s == MTR_OK) s = mtr_model_encode(m, &buf, &len, err);
    if (s == MTR_OK) s = mtr_save_begin(&save, path, err);
    if (s == MTR_OK && (s = mtr_save_write(&save, buf, len, err)) == MTR_OK)
        s = mtr_save_commit(&save, err);
    mtr_save_abort(&save);
    free(buf);
    mtr_model_free(m);
    return s;
}
