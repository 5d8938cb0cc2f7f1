/* Tests for runtime/npy.c: .npy bytes and round trips (checked with numpy when
 * it is installed), strict refusal of corrupt files naming them, file names for
 * awkward tensor names, and a model's export and all-or-nothing import. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mtr/npy.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A python that has numpy ("python3" on the PATH, else the system's), or NULL. */
static const char *numpy_python(void)
{
    static const char *const cands[] = {"python3", "/usr/bin/python3"};
    char cmd[256];
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s -c 'import numpy'", cands[i]);
        if (tu_run(cmd, NULL) == 0) return cands[i];
    }
    return NULL;
}

static void test_write_bytes_and_read(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "a.npy");
    const float data[6] = {1, -2.5f, 3e-8f, 4, 5e30f, -0.0f};
    const int64_t shape[2] = {2, 3};
    MtrError err = {0};
    assert_int_equal(mtr_npy_write(path, data, 2, shape, &err), MTR_OK);

    size_t len = 0;
    char *bytes = tu_read_file(path, &len);
    assert_non_null(bytes);
    assert_memory_equal(bytes, "\x93NUMPY\x01\x00", 8);
    size_t hlen = (unsigned char)bytes[8] | (size_t)(unsigned char)bytes[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    assert_int_equal(len, 10 + hlen + 6 * 4);
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    assert_memory_equal(bytes + 10, dict, strlen(dict));
    for (size_t i = 10 + strlen(dict); i < 10 + hlen - 1; i++) assert_int_equal(bytes[i], ' ');
    assert_int_equal(bytes[10 + hlen - 1], '\n');
    /* 1.0f little-endian */
    assert_memory_equal(bytes + 10 + hlen, "\x00\x00\x80\x3f", 4);
    free(bytes);

    float *back = NULL;
    int rank = -1;
    int64_t got[MTR_MAX_RANK] = {0};
    assert_int_equal(mtr_npy_read(path, &back, &rank, got, &err), MTR_OK);
    assert_int_equal(rank, 2);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 3);
    assert_memory_equal(back, data, sizeof data);
    free(back);

    /* Rank 1 is written (n,), rank 0 (), and zero elements are fine. */
    const int64_t one[1] = {5};
    assert_int_equal(mtr_npy_write(path, data, 1, one, &err), MTR_OK);
    bytes = tu_read_file(path, NULL);
    assert_non_null(strstr(bytes + 10, "'shape': (5,), }"));
    free(bytes);
    assert_int_equal(mtr_npy_write(path, data, 0, NULL, &err), MTR_OK);
    bytes = tu_read_file(path, &len);
    assert_non_null(strstr(bytes + 10, "'shape': (), }"));
    assert_int_equal((len - 4) % 64, 0);
    free(bytes);
    assert_int_equal(mtr_npy_read(path, &back, &rank, got, &err), MTR_OK);
    assert_int_equal(rank, 0);
    assert_true(back[0] == 1.0f);
    free(back);
    const int64_t empty[2] = {0, 7};
    assert_int_equal(mtr_npy_write(path, data, 2, empty, &err), MTR_OK);
    assert_int_equal(mtr_npy_read(path, &back, &rank, got, &err), MTR_OK);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 7);
    free(back);
    /* No temporary file is left behind. */
    char *tmp = tu_path(dir, "a.npy.tmp");
    assert_int_not_equal(access(tmp, F_OK), 0);
    free(tmp);

    tu_rmtree(dir);
    free(path);
    free(dir);
}

static void test_numpy_agrees(void **state)
{
    (void)state;
    const char *py = numpy_python();
    if (!py) {
        skip();
        return;
    }
    char *dir = tu_tmpdir();
    char *ours = tu_path(dir, "ours.npy");
    const float data[6] = {1, -2.5f, 3e-8f, 4, 5e30f, 0.1f};
    const int64_t shape[2] = {3, 2};
    assert_int_equal(mtr_npy_write(ours, data, 2, shape, NULL), MTR_OK);
    const int64_t one[1] = {4};
    char *vec = tu_path(dir, "vec.npy");
    assert_int_equal(mtr_npy_write(vec, data, 1, one, NULL), MTR_OK);

    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && %s -c 'import numpy as np\n"
             "a=np.load(\"ours.npy\")\n"
             "assert a.dtype==np.dtype(\"<f4\") and a.shape==(3,2), (a.dtype, a.shape)\n"
             "want=np.array([1,-2.5,3e-8,4,5e30,0.1],dtype=np.float32).reshape(3,2)\n"
             "assert (a==want).all(), a\n"
             "v=np.load(\"vec.npy\")\n"
             "assert v.shape==(4,), v.shape\n"
             "b=np.arange(12,dtype=np.float32).reshape(3,4)/7\n"
             "np.save(\"theirs.npy\", b)\n"
             "f=open(\"v2.npy\",\"wb\")\n"
             "np.lib.format.write_array(f, b, version=(2,0))\n"
             "f.close()\n"
             "np.save(\"f8.npy\", b.astype(np.float64))\n"
             "np.save(\"fortran.npy\", np.asfortranarray(b))\n"
             "print(\"numpy ok\")'",
             dir, py);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) print_error("%s\n", out ? out : "");
    assert_int_equal(rc, 0);
    free(out);

    const char *mine[] = {"theirs.npy", "v2.npy"};
    for (int k = 0; k < 2; k++) {
        char *p = tu_path(dir, mine[k]);
        float *back = NULL;
        int rank = 0;
        int64_t got[MTR_MAX_RANK];
        MtrError err = {0};
        assert_int_equal(mtr_npy_read(p, &back, &rank, got, &err), MTR_OK);
        assert_int_equal(rank, 2);
        assert_int_equal(got[0], 3);
        assert_int_equal(got[1], 4);
        for (int i = 0; i < 12; i++) assert_true(back[i] == (float)i / 7.0f);
        free(back);
        free(p);
    }
    const char *refused[] = {"f8.npy", "fortran.npy"};
    const char *why[] = {"descr '<f8'", "fortran_order True"};
    for (int k = 0; k < 2; k++) {
        char *p = tu_path(dir, refused[k]);
        float *back = NULL;
        int rank = 0;
        int64_t got[MTR_MAX_RANK];
        MtrError err = {0};
        assert_int_equal(mtr_npy_read(p, &back, &rank, got, &err), MTR_E_FORMAT);
        assert_non_null(strstr(err.msg, p));
        assert_non_null(strstr(err.msg, why[k]));
        free(p);
    }
    tu_rmtree(dir);
    free(ours);
    free(vec);
    free(dir);
}

/* Writes a .npy with the given preamble version, header dict and data bytes. */
static void write_raw(const char *path, int major, const char *dict, size_t data_bytes)
{
    size_t pre = major == 1 ? 10 : 12;
    size_t hlen = strlen(dict) + 1;
    hlen += (64 - (pre + hlen) % 64) % 64;
    size_t len = pre + hlen + data_bytes;
    unsigned char *b = calloc(1, len);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[8] = (unsigned char)hlen;
    b[9] = (unsigned char)(hlen >> 8);
    memset(b + pre, ' ', hlen);
    memcpy(b + pre, dict, strlen(dict));
    b[pre + hlen - 1] = '\n';
    assert_int_equal(tu_write_file(path, b, len), 0);
    free(b);
}

static void test_corrupt_refused(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "bad.npy");
    static const struct {
        int major;
        const char *dict;
        size_t data;
        const char *why;
    } cases[] = {
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, NULL},
        {2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, NULL},
        {1, "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", 24, NULL},
        {3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, "version 3.0"},
        {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24, "descr '>f4'"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, "truncated"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28, "trailing"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 1, 1), }", 24, "rank 4"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", 24, "malformed"},
        {1, "{'descr': '<f4', 'fortran_order': False}", 24, "malformed"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", 24, "malformed"},
        {1, "{'descr': '<f4', 'descr': '<f4', 'shape': (6,)}", 24, "malformed"},
        {1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", 24, "malformed"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}", 24, "malformed"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} x", 24, "malformed"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_raw(path, cases[k].major, cases[k].dict, cases[k].data);
        float *back = NULL;
        int rank = 0;
        int64_t got[MTR_MAX_RANK];
        MtrError err = {0};
        MtrStatus st = mtr_npy_read(path, &back, &rank, got, &err);
        if (!cases[k].why) {
            assert_int_equal(st, MTR_OK);
            assert_int_equal(rank, 2);
            free(back);
            continue;
        }
        if (st == MTR_OK || !strstr(err.msg, cases[k].why) || !strstr(err.msg, path))
            print_error("case %zu: status %d, message '%s'\n", k, st, err.msg);
        assert_int_equal(st, MTR_E_FORMAT);
        assert_non_null(strstr(err.msg, path));
        assert_non_null(strstr(err.msg, cases[k].why));
    }
    /* Bad magic, a file too short for a header, a missing file. */
    assert_int_equal(tu_write_file(path, "\x93NUMPZ\x01\x00\x10\x00", 10), 0);
    MtrError err = {0};
    float *back = NULL;
    int rank;
    int64_t got[MTR_MAX_RANK];
    assert_int_equal(mtr_npy_read(path, &back, &rank, got, &err), MTR_E_FORMAT);
    assert_non_null(strstr(err.msg, "bad magic"));
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(tu_write_file(path, "\x93NUMPY\x01", 7), 0);
    assert_int_equal(mtr_npy_read(path, &back, &rank, got, &err), MTR_E_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    char *missing = tu_path(dir, "none.npy");
    assert_int_equal(mtr_npy_read(missing, &back, &rank, got, &err), MTR_E_IO);
    assert_non_null(strstr(err.msg, missing));
    free(missing);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

static void test_file_stems(void **state)
{
    (void)state;
    char buf[64];
    mtr_npy_file_stem(buf, sizeof buf, "user/emb:0");
    assert_string_equal(buf, "user_emb_0");
    mtr_npy_file_stem(buf, sizeof buf, "rating.dense-1_kernel");
    assert_string_equal(buf, "rating.dense-1_kernel");
    mtr_npy_file_stem(buf, sizeof buf, "..");
    assert_string_equal(buf, "_.");
    mtr_npy_file_stem(buf, sizeof buf, "");
    assert_string_equal(buf, "_");
    mtr_npy_file_stem(buf, sizeof buf, "a b\xc3\xa9");
    assert_string_equal(buf, "a_b__");
    assert_int_equal(mtr_npy_file_stem(buf, 3, "abcdef"), 6);
    assert_string_equal(buf, "ab");
}

/* ---- a hand-built trained model */

static char **words(int n, const char *const *w)
{
    char **out = calloc((size_t)n, sizeof *out);
    for (int i = 0; i < n; i++) out[i] = strdup(w[i]);
    return out;
}

static MtrTensor tensor(const char *name, MtrRole role, int rank, MtrDim d0, MtrDim d1)
{
    MtrTensor t = {0};
    t.name = strdup(name);
    t.source_column = -1;
    t.dtype = MTR_DT_F32;
    t.role = (uint8_t)role;
    t.rank = (uint8_t)rank;
    t.dim[0] = d0;
    t.dim[1] = d1;
    return t;
}

/* Symbols vocab.user_id = 4 rows, items = 3; tensors: two params, two
 * optimizer states (one a scalar), one activation that is never exported. */
static MtrModel *make_model(float base)
{
    MtrModel *m = mtr_model_new();
    assert_non_null(m);
    m->name = strdup("toy");
    const char *syms[] = {"vocab.user_id", "items"};
    m->n_symbols = 2;
    m->symbols = words(2, syms);
    m->symbol_values = calloc(2, sizeof *m->symbol_values);
    m->symbol_values[0] = 4;
    m->symbol_values[1] = 3;
    m->n_tensors = 5;
    m->tensors = calloc(5, sizeof *m->tensors);
    MtrDim none = {-1, 1};
    m->tensors[0] = tensor("user/emb", MTR_ROLE_PARAM, 2, (MtrDim){0, 1}, (MtrDim){-1, 2});
    m->tensors[1] = tensor("dense.bias", MTR_ROLE_PARAM, 1, (MtrDim){-1, 5}, none);
    m->tensors[2] =
        tensor("adagrad/user/emb", MTR_ROLE_OPTSTATE, 2, (MtrDim){0, 1}, (MtrDim){-1, 2});
    m->tensors[3] = tensor("step", MTR_ROLE_OPTSTATE, 0, none, none);
    m->tensors[4] = tensor("hidden", MTR_ROLE_ACT, 2, (MtrDim){1, 1}, (MtrDim){-1, 2});
    const int n[4] = {8, 5, 8, 1};
    m->param_data = calloc(5, sizeof *m->param_data);
    for (int t = 0; t < 4; t++) {
        m->param_data[t] = calloc((size_t)n[t], sizeof(float));
        for (int i = 0; i < n[t]; i++) m->param_data[t][i] = base + (float)(t * 10 + i) / 4;
    }
    m->n_columns = 1;
    m->columns = calloc(1, sizeof *m->columns);
    m->columns[0].name = strdup("user_id");
    m->columns[0].type = MTR_COL_STRING;
    m->columns[0].lookup = 1;
    m->columns[0].vocab_sym = 0;
    m->columns[0].derived_from = -1;
    const char *users[] = {"alice", "bob", "carol"};
    m->n_vocabs = 1;
    m->vocabs = calloc(1, sizeof *m->vocabs);
    m->vocabs[0].column = 0;
    m->vocabs[0].n = 3;
    m->vocabs[0].words = words(3, users);
    const char *items[] = {"Toy Story (1995)", "Heat (1995)", "Toy Story (1995)"};
    m->items.n = 3;
    m->items.labels = words(3, items);
    m->trained = 1;
    return m;
}

static int file_exists(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    int ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

static void test_export_import(void **state)
{
    (void)state;
    char *top = tu_tmpdir();
    char *dir = tu_path(top, "deep/export");
    MtrModel *m = make_model(1.0f);
    MtrError err = {0};
    assert_int_equal(mtr_export_dir(m, dir, &err), MTR_OK);
    assert_true(file_exists(dir, "user_emb.npy"));
    assert_true(file_exists(dir, "dense.bias.npy"));
    assert_true(file_exists(dir, "adagrad_user_emb.npy"));
    assert_true(file_exists(dir, "step.npy"));
    assert_false(file_exists(dir, "hidden.npy"));
    char *p = tu_path(dir, "vocab.user_id.txt");
    char *text = tu_read_file(p, NULL);
    assert_string_equal(text, "alice\nbob\ncarol\n");
    free(text);
    free(p);
    p = tu_path(dir, "items.txt");
    text = tu_read_file(p, NULL);
    assert_string_equal(text, "Toy Story (1995)\nHeat (1995)\nToy Story (1995)\n");
    free(text);
    free(p);

    float *back = NULL;
    int rank = 0;
    int64_t got[MTR_MAX_RANK];
    p = tu_path(dir, "user_emb.npy");
    assert_int_equal(mtr_npy_read(p, &back, &rank, got, &err), MTR_OK);
    assert_int_equal(rank, 2);
    assert_int_equal(got[0], 4);
    assert_int_equal(got[1], 2);
    assert_memory_equal(back, m->param_data[0], 8 * sizeof(float));
    free(back);
    free(p);

    const char *py = numpy_python();
    if (py) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && %s -c 'import numpy as np\n"
                 "assert np.load(\"dense.bias.npy\").shape==(5,)\n"
                 "assert np.load(\"step.npy\").shape==()\n"
                 "e=np.load(\"adagrad_user_emb.npy\")\n"
                 "assert e.shape==(4,2) and e[3,1]==1+27/4, e'",
                 dir, py);
        assert_int_equal(tu_run(cmd, NULL), 0);
    }

    /* Import into a model with other values: every saved tensor comes back. */
    MtrModel *b = make_model(-7.0f);
    float *act = b->param_data[4];
    assert_int_equal(mtr_import_dir(b, dir, &err), MTR_OK);
    const int n[4] = {8, 5, 8, 1};
    for (int t = 0; t < 4; t++)
        assert_memory_equal(b->param_data[t], m->param_data[t], (size_t)n[t] * sizeof(float));
    assert_ptr_equal(b->param_data[4], act);

    /* A model that has bound sizes but no parameter table yet gets one. */
    for (int t = 0; t < 5; t++) free(b->param_data[t]);
    free(b->param_data);
    b->param_data = NULL;
    b->trained = 0;
    assert_int_equal(mtr_import_dir(b, dir, &err), MTR_OK);
    assert_int_equal(b->trained, 1);
    assert_memory_equal(b->param_data[1], m->param_data[1], 5 * sizeof(float));
    assert_null(b->param_data[4]);

    mtr_model_free(b);
    mtr_model_free(m);
    tu_rmtree(top);
    free(dir);
    free(top);
}

/* The model's numbers, to see that a refused import left them alone. */
static void expect_untouched(const MtrModel *m, float *const *ptrs)
{
    const int n[4] = {8, 5, 8, 1};
    for (int t = 0; t < 4; t++) {
        assert_ptr_equal(m->param_data[t], ptrs[t]);
        for (int i = 0; i < n[t]; i++)
            assert_true(m->param_data[t][i] == -7.0f + (float)(t * 10 + i) / 4);
    }
}

static void test_import_all_or_nothing(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    MtrModel *m = make_model(1.0f);
    MtrError err = {0};
    assert_int_equal(mtr_export_dir(m, dir, &err), MTR_OK);
    MtrModel *b = make_model(-7.0f);
    float *ptrs[4];
    for (int t = 0; t < 4; t++) ptrs[t] = b->param_data[t];

    /* A wrong shape in the second file read: nothing changes, the error names
     * the file, the shape found and the shape expected. */
    char *bias = tu_path(dir, "dense.bias.npy");
    const float six[6] = {0};
    const int64_t s6[1] = {6};
    assert_int_equal(mtr_npy_write(bias, six, 1, s6, &err), MTR_OK);
    assert_int_equal(mtr_import_dir(b, dir, &err), MTR_E_SHAPE);
    assert_non_null(strstr(err.msg, bias));
    assert_non_null(strstr(err.msg, "(6,)"));
    assert_non_null(strstr(err.msg, "(5,)"));
    assert_non_null(strstr(err.msg, "dense.bias"));
    expect_untouched(b, ptrs);

    /* A truncated file. */
    assert_int_equal(mtr_export_dir(m, dir, &err), MTR_OK);
    char *step = tu_path(dir, "step.npy");
    size_t len;
    char *bytes = tu_read_file(step, &len);
    assert_int_equal(tu_write_file(step, bytes, len - 1), 0);
    free(bytes);
    assert_int_equal(mtr_import_dir(b, dir, &err), MTR_E_FORMAT);
    assert_non_null(strstr(err.msg, step));
    expect_untouched(b, ptrs);

    /* A missing file. */
    assert_int_equal(remove(step), 0);
    assert_int_equal(mtr_import_dir(b, dir, &err), MTR_E_IO);
    assert_non_null(strstr(err.msg, step));
    expect_untouched(b, ptrs);

    /* A vocabulary that is not the model's: the ids would not line up. */
    assert_int_equal(mtr_export_dir(m, dir, &err), MTR_OK);
    char *vocab = tu_path(dir, "vocab.user_id.txt");
    assert_int_equal(tu_write_file(vocab, "alice\nbobby\ncarol\n", 18), 0);
    assert_int_equal(mtr_import_dir(b, dir, &err), MTR_E_DATA);
    assert_non_null(strstr(err.msg, "vocab.user_id.txt:2"));
    expect_untouched(b, ptrs);
    assert_int_equal(tu_write_file(vocab, "alice\nbob\n", 10), 0);
    assert_int_equal(mtr_import_dir(b, dir, &err), MTR_E_DATA);
    expect_untouched(b, ptrs);
    /* Without the text files the numbers alone import. */
    assert_int_equal(remove(vocab), 0);
    char *items = tu_path(dir, "items.txt");
    assert_int_equal(remove(items), 0);
    assert_int_equal(mtr_import_dir(b, dir, &err), MTR_OK);
    assert_true(b->param_data[1][4] == m->param_data[1][4]);

    free(items);
    free(vocab);
    free(step);
    free(bias);
    mtr_model_free(b);
    mtr_model_free(m);
    tu_rmtree(dir);
    free(dir);
}

static void test_refusals(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    MtrError err = {0};
    /* Untrained: no bound sizes. */
    MtrModel *m = make_model(0);
    free(m->symbol_values);
    m->symbol_values = NULL;
    assert_int_equal(mtr_export_dir(m, dir, &err), MTR_E_STATE);
    assert_non_null(strstr(err.msg, "trained"));
    assert_int_equal(mtr_import_dir(m, dir, &err), MTR_E_STATE);
    assert_non_null(strstr(err.msg, "trained"));
    mtr_model_free(m);

    /* Two names that map to one file. */
    m = make_model(0);
    free(m->tensors[1].name);
    m->tensors[1].name = strdup("user_emb");
    assert_int_equal(mtr_export_dir(m, dir, &err), MTR_E_ARG);
    assert_non_null(strstr(err.msg, "user_emb.npy"));
    mtr_model_free(m);

    /* A word with a line break cannot be one line. */
    m = make_model(0);
    free(m->items.labels[1]);
    m->items.labels[1] = strdup("two\nlines");
    assert_int_equal(mtr_export_dir(m, dir, &err), MTR_E_ARG);
    assert_non_null(strstr(err.msg, "line break"));
    mtr_model_free(m);

    /* A folder that cannot be made. */
    char *file = tu_path(dir, "plain");
    assert_int_equal(tu_write_file(file, "x", 1), 0);
    char *under = tu_path(file, "sub");
    m = make_model(0);
    assert_int_equal(mtr_export_dir(m, under, &err), MTR_E_IO);
    mtr_model_free(m);
    free(under);
    free(file);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_bytes_and_read),
        cmocka_unit_test(test_numpy_agrees),
        cmocka_unit_test(test_corrupt_refused),
        cmocka_unit_test(test_file_stems),
        cmocka_unit_test(test_export_import),
        cmocka_unit_test(test_import_all_or_nothing),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
