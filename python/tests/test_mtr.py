"""The Python binding against mtrun: the same model gives the same
recommendations, scores and predictions through both. Needs MTR_BIN_DIR (mtrc,
mtrun) and MTR_SOURCE_DIR; trains the planted model of tests/gen_planted.sh."""

import os
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np

SRC = os.environ.get("MTR_SOURCE_DIR",
                     os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("MTR_BIN_DIR", os.path.join(SRC, "build", "bin"))
sys.path.insert(0, os.path.join(SRC, "python"))
import mtr  # noqa: E402


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


class BindingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        run(os.path.join(SRC, "tests", "gen_planted.sh"), os.path.join(d, "p"), "7")
        run(os.path.join(BIN, "mtrc"), os.path.join(d, "p", "planted.mtr"), "-o",
            os.path.join(d, "model.bin"))
        cls.path = os.path.join(d, "trained.bin")
        run(os.path.join(BIN, "mtrun"), os.path.join(d, "model.bin"), "--data",
            os.path.join(d, "p", "data"), "--quiet", "-o", cls.path)
        cls.m = mtr.Model(cls.path)

    @classmethod
    def tearDownClass(cls):
        cls.m.close()
        cls.tmp.cleanup()

    def mtrun(self, *args):
        return run(os.path.join(BIN, "mtrun"), self.path, *args)

    def test_lists(self):
        m = self.m
        self.assertEqual(m.tasks, ["rating", "retrieval"])
        self.assertEqual(m.predict_tasks, ["rating"])
        self.assertEqual(m.recommend_task, "retrieval")
        self.assertEqual(m.inputs, ["user_id", "movie_title"])
        self.assertEqual(m.item_inputs, ["movie_title"])
        self.assertEqual(len(m.item_labels), 90)
        self.assertIn("rating.weight", m.knobs)
        self.assertTrue(m.trained)
        self.assertRegex(mtr.version(), r"^\d+\.\d+\.\d+$")

    def test_recommend_equals_mtrun(self):
        users = ["user_00", "user_42", "user_17"]
        ids, scores = self.m.recommend(users, k=7)
        self.assertEqual(ids.shape, (3, 7))
        for r, u in enumerate(users):
            want = [line.split("\t") for line in
                    self.mtrun("recommend", "--user", u, "-k", "7").splitlines()]
            got = [[str(i + 1), "%.4f" % scores[r, i], self.m.item_labels[ids[r, i]]]
                   for i in range(7)]
            self.assertEqual(got, want, u)

    def test_predict_equals_mtrun(self):
        for u, item in [("user_00", "item_g0_1"), ("user_42", "item_g6_3")]:
            want = self.mtrun("predict", "--user", u, "--item", item)
            got = self.m.predict({"user_id": [u], "movie_title": [item]})
            self.assertEqual(got.shape, (1, 1))
            self.assertEqual("rating\t%.6f\n" % got[0, 0], want)

    def test_batch_equals_rows(self):
        users = ["user_%02d" % (i % 60) for i in range(300)]
        items = [self.m.item_labels[(7 * i) % 90] for i in range(300)]
        batch = self.m.predict({"user_id": users, "movie_title": items}, task="rating")
        one = [self.m.predict({"user_id": [u], "movie_title": [it]})[0, 0]
               for u, it in zip(users[:20], items[:20])]
        np.testing.assert_array_equal(batch[:20], np.array(one, dtype=np.float32))
        ids, _ = self.m.recommend(users, k=3)
        self.assertEqual(ids.shape, (300, 3))
        np.testing.assert_array_equal(ids[60:120], ids[:60])

    def test_vectors_score_as_recommend(self):
        users = ["user_03", "user_31"]
        q = self.m.query_vectors(users)
        v = self.m.item_vectors()
        self.assertEqual(q.shape[1], v.shape[1])
        self.assertEqual(v.shape[0], 90)
        ids, scores = self.m.recommend(users, k=5)
        s = q @ v.T
        for r in range(2):
            np.testing.assert_allclose(s[r, ids[r]], scores[r], rtol=1e-5, atol=1e-5)
            self.assertAlmostEqual(float(s[r].max()), float(scores[r, 0]), places=4)

    def test_exclude(self):
        ids, scores = self.m.recommend(["user_05"], k=5)
        ex_ids, ex_scores = self.m.recommend(["user_05"], k=3, exclude=[ids[0, :2]])
        np.testing.assert_array_equal(ex_ids[0], ids[0, 2:5])
        np.testing.assert_array_equal(ex_scores[0], scores[0, 2:5])
        everything = list(range(88))
        ids2, scores2 = self.m.recommend(["user_05"], k=5, exclude=[everything])
        self.assertEqual(sorted(ids2[0, :2]), [88, 89])
        self.assertEqual(list(ids2[0, 2:]), [-1, -1, -1])
        self.assertTrue(np.all(np.isneginf(scores2[0, 2:])))

    def test_errors(self):
        with self.assertRaisesRegex(mtr.Error, "unknown user_id 'nobody'"):
            self.m.recommend(["nobody"], k=3)
        with self.assertRaisesRegex(mtr.Error, "row 2: unknown user_id 'nobody'"):
            self.m.predict({"user_id": ["user_01", "nobody"], "movie_title": ["item_g0_1"] * 2})
        ids, _ = self.m.recommend(["nobody"], k=3, unknown_ok=True)
        self.assertEqual(ids.shape, (1, 3))
        with self.assertRaisesRegex(mtr.Error, "k must be between 1 and the 90 items"):
            self.m.recommend(["user_01"], k=91)
        with self.assertRaisesRegex(mtr.Error, "no column 'movie_title'"):
            self.m.predict({"user_id": ["user_01"]})
        with self.assertRaisesRegex(mtr.Error, "unknown knob 'rating.wieght'; did you mean"):
            self.m.set_knob("rating.wieght", 1)
        with self.assertRaisesRegex(mtr.Error, "must be >= 0"):
            self.m.set_knob("rating.weight", -1)
        with self.assertRaisesRegex(mtr.Error, "shorter than the 24-byte header"):
            mtr.Model(data=b"not a model")

    def test_export_vectors(self):
        """export --vectors writes what the binding computes, rows in the
        order of items.txt and of the queries file."""
        d = os.path.join(self.tmp.name, "vec")
        self.mtrun("export", d, "--vectors")
        items = np.load(os.path.join(d, "retrieval.item_vectors.npy"))
        labels = open(os.path.join(d, "items.txt"), encoding="utf-8").read().splitlines()
        self.assertEqual(labels, self.m.item_labels)
        np.testing.assert_allclose(items, self.m.item_vectors(), rtol=1e-6, atol=1e-6)
        queries = open(os.path.join(d, "retrieval.queries.tsv")).read().splitlines()
        self.assertEqual(queries[0], "user_id")
        vocab = open(os.path.join(d, "vocab.user_id.txt")).read().splitlines()
        self.assertEqual(queries[1:], vocab)
        q = np.load(os.path.join(d, "retrieval.query_vectors.npy"))
        self.assertEqual(q.shape, (60, items.shape[1]))
        np.testing.assert_allclose(q, self.m.query_vectors(queries[1:]), rtol=1e-6, atol=1e-6)
        # From a data folder: its distinct users, in first-seen order.
        d2 = os.path.join(self.tmp.name, "vec2")
        self.mtrun("export", d2, "--vectors", "--data", os.path.join(self.tmp.name, "p", "data"))
        seen = []
        for line in open(os.path.join(self.tmp.name, "p", "data", "interactions.csv")).readlines()[1:]:
            u = line.split(",")[0]
            if u not in seen:
                seen.append(u)
        rows = open(os.path.join(d2, "retrieval.queries.tsv")).read().splitlines()[1:]
        self.assertEqual(rows, seen)
        np.testing.assert_allclose(np.load(os.path.join(d2, "retrieval.query_vectors.npy")),
                                   self.m.query_vectors(seen), rtol=1e-6, atol=1e-6)
        # The scores recommend ranks with are these dot products.
        ids, scores = self.m.recommend([seen[0]], k=3)
        np.testing.assert_allclose((items @ q[vocab.index(seen[0])])[ids[0]], scores[0],
                                   rtol=1e-5, atol=1e-5)

    def test_set_knob(self):
        m = mtr.Model(self.path)
        m.set_knob("retrieval.weight", 0.25)
        self.assertEqual(m.knobs["retrieval.weight"], 0.25)
        m.close()

    def test_open_buffer(self):
        with open(self.path, "rb") as f:
            data = f.read()
        with mtr.Model(data=data) as m:
            np.testing.assert_array_equal(m.item_vectors(), self.m.item_vectors())

    def test_threads(self):
        users = ["user_%02d" % (i % 60) for i in range(256)]
        items = [self.m.item_labels[i % 90] for i in range(256)]
        want = self.m.predict({"user_id": users, "movie_title": items})
        want_ids, _ = self.m.recommend(users, k=4)
        bad = []

        def work():
            for _ in range(5):
                if not np.array_equal(self.m.predict({"user_id": users, "movie_title": items}),
                                      want):
                    bad.append("predict")
                if not np.array_equal(self.m.recommend(users, k=4)[0], want_ids):
                    bad.append("recommend")

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(bad, [])


if __name__ == "__main__":
    unittest.main()
