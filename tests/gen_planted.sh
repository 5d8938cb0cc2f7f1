#!/usr/bin/env bash
# Writes a small generic data set with a planted structure, and a small model
# for it, for the end-to-end tests (tests/e2e_planted.sh, tests/e2e_cli.sh).
#
#   tests/gen_planted.sh DIR [SEED]
#
# DIR/data/interactions.csv  user_id,movie_title,user_rating (header row)
# DIR/data/items.csv         movie_title (header row), every item once
# DIR/planted.mtr            the tutorial's model, shrunk: embedding(8),
#                            dense(16, relu) -> dense(1), batch 64, 15 epochs
#
# The structure: 90 items in 9 groups of 10, 60 users each in one group
# (user u is in group u % 9). A user's 20 interactions are items of its own
# group only (drawn with replacement), so a retrieval model that learns the
# groups puts the true item in its top 10 (chance: 10/90 = 0.11). Each user
# has a planted generosity (3, 4 or 5 stars, from int(u / 9) % 3), and rates
# every item with it, one star off in 1 of 10 ratings, so a rating model that
# learns the users beats the ratings' standard deviation by far.
# The generator is awk with a seeded generator: the same SEED and the same awk
# give the same bytes (mawk and gawk draw different numbers; the tests only
# rely on the structure).
set -euo pipefail

dir="${1:?usage: gen_planted.sh DIR [SEED]}"
seed="${2:-7}"
mkdir -p "$dir/data"

awk -v seed="$seed" -v data="$dir/data" 'BEGIN {
  srand(seed)
  groups = 9; items_per = 10; users = 60; per_user = 20
  inter = data "/interactions.csv"; items = data "/items.csv"
  print "user_id,movie_title,user_rating" > inter
  print "movie_title" > items
  for (g = 0; g < groups; g++)
    for (i = 0; i < items_per; i++)
      printf "item_g%d_%d\n", g, i > items
  for (u = 0; u < users; u++) {
    g = u % groups
    generosity = 3 + int(u / groups) % 3
    for (n = 0; n < per_user; n++) {
      i = int(rand() * items_per)
      r = generosity
      x = rand()
      if (x < 0.05) r = generosity - 1
      else if (x < 0.10 && generosity < 5) r = generosity + 1
      printf "user_%02d,item_g%d_%d,%d\n", u, g, i, r > inter
    }
  }
}'

cat >"$dir/planted.mtr" <<'MTR'
# The tutorial's model, shrunk for a small planted data set (tests only).
model planted

input user_id     : string
input movie_title : string
label user_rating : float

tower user  = user_id     -> lookup -> embedding(8)
tower movie = movie_title -> lookup -> embedding(8)

head rating = concat(user, movie) -> dense(16, relu) -> dense(1)

task rating    = ranking(rating, user_rating) loss mse metrics rmse weight 1.0
task retrieval = retrieval(user, movie) metrics top_k(1, 5, 10, 50, 100) weight 1.0

train {
  optimizer adagrad(lr = 0.1)
  batch 64
  epochs 15
  seed 42
  split 0.8
}
MTR
