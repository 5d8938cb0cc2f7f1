#!/usr/bin/env bash
# Serving a trained model, part 1: predicting ratings.
#
#   examples/predict.sh [TRAINED_MODEL]
#
# A trained model.bin holds its parameters and vocabularies, so it predicts
# with no data folder. The model defaults to $OUT/joint.bin (OUT defaults to
# out/tutorial), which examples/tutorial.sh writes; when it is missing, this
# script compiles models/movielens.mtr and trains the joint model first (data:
# $MTR_DATA, else scripts/get-data). Env: MTR_BIN (default build/bin).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${MTR_BIN:-$root/build/bin}"
out="${OUT:-out/tutorial}"
model="${1:-$out/joint.bin}"

# shellcheck source=examples/ensure-model.sh
. "$root/examples/ensure-model.sh"

# show MTRUN ARGS...: prints the command as one would type it, then runs it.
show() {
  local line='$ mtrun' a
  for a in "${@:2}"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./=:+-]+$ ]]; then line+=" $a"; else line+=" \"$a\""; fi
  done
  echo "$line"
  "$@" 2>&1
  echo
}

echo "== what the model holds (knobs, parameters, vocabularies)"
"$bin/mtrun" "$model" info | sed -n '/^knobs:/,/^parameters:/p' | sed '$d'

echo "== one rating: --user names the query tower's input, --item the item's"
show "$bin/mtrun" "$model" predict --user 42 --item "Dances with Wolves (1990)"

echo "== the same, naming the model's input columns (any model, any columns)"
show "$bin/mtrun" "$model" predict --input user_id=42 --input "movie_title=Dances with Wolves (1990)"

echo "== a few movies for the same user"
for title in "Star Wars (1977)" "Toy Story (1995)" "Godfather, The (1972)"; do
  show "$bin/mtrun" "$model" predict --user 42 --item "$title"
done

echo "== an id the model never saw is an error (exit status 1), not a guess"
echo "\$ mtrun predict --user 42 --item \"No Such Film (2099)\""
"$bin/mtrun" "$model" predict --user 42 --item "No Such Film (2099)" 2>&1 ||
  echo "(exit status $?)"
