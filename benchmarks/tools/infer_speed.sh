#!/bin/sh
# Acceptance: `openpaf infer` over the coco/val photos at the defaults vs --precision fp32,
# interleaved in one run, steady state = (N - 1) / (wall(all) - wall(one photo)).
# Usage: [RUNS=2] [MAX=N] sh benchmarks/tools/infer_speed.sh OUT.json [openpaf command]
# (MAX: only the first N photos, for a loaded machine)
set -e
OUT=${1:-benchmarks/infer_speed.json}; OP=${2:-openpaf}
VAL=${VAL:-../shared/data/coco/val}; TMP=$(mktemp -d)
if [ -n "$MAX" ]; then
  mkdir "$TMP/val"; ls "$VAL" | head -n "$MAX" | while read f; do cp "$VAL/$f" "$TMP/val/"; done
  VAL="$TMP/val"
fi
ONE=$(ls "$VAL" | head -1); N=$(ls "$VAL" | wc -l)
wall() { s=$(date +%s.%N); $OP infer "$@" -o "$TMP/o" -q >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
for run in $(seq ${RUNS:-2}); do
  for p in fp32 auto; do
    one=$(wall "$VAL/$ONE" --precision $p); all=$(wall "$VAL" --precision $p)
    echo "{\"run\": $run, \"precision\": \"$p\", \"one_s\": $one, \"all_s\": $all, \"images\": $N}"
  done
done > "$TMP/rows.jsonl"
python - "$TMP/rows.jsonl" "$OUT" <<'PY'
import json, os, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
rate = {p: statistics.median((r["images"] - 1) / (r["all_s"] - r["one_s"]) for r in rows
                             if r["precision"] == p) for p in ("fp32", "auto")}
out = {"rows": rows, "steady_images_per_s": rate, "ratio_auto_vs_fp32": rate["auto"] / rate["fp32"],
       "load_average": os.getloadavg(), "note": "machine shared; interleaved runs"}
json.dump(out, open(sys.argv[2], "w"), indent=1)
print(json.dumps({k: out[k] for k in ("steady_images_per_s", "ratio_auto_vs_fp32", "load_average")}))
PY
rm -rf "$TMP"
