# shellcheck shell=bash disable=SC2154
# Sourced by examples/predict.sh and examples/recommend.sh: when $model (a
# trained model path) is missing, compiles models/movielens.mtr and trains the
# joint model into it (data: $MTR_DATA, else scripts/get-data). Expects $root
# (the source tree) and $bin (the folder with mtrc and mtrun).
if [ ! -f "$model" ]; then
  echo "== no trained model at $model: training the joint model first"
  data="${MTR_DATA:-$("$root/scripts/get-data" "$root/data" | tail -n 1)}"
  mkdir -p "$(dirname "$model")"
  "$bin/mtrc" "$root/models/movielens.mtr" -o "$model.compiled"
  "$bin/mtrun" "$model.compiled" --data "$data" --quiet -o "$model" >/dev/null
  rm -f "$model.compiled"
fi
