#!/usr/bin/env bash
# GPU check, one command, at most 8 minutes on one GPU (each step has its own time limit):
#   1. the CUDA tests (tests/test_cuda.py; skipped on machines without CUDA);
#   2. the full-VOC-val-sized synthetic evaluation (eval/bench_hbird.py --gpu-run: 1,449 generated
#      images at 504 px, DINOv2 ViT-S/14, memory 1024·10²) in bf16 and in fp32, with the per-stage split;
#   3. one JSON with everything: runs/gpu_check.json (or the path given as $1).
#
#   bash eval/gpu_check.sh [OUT.json]        # PYTHON=... to choose the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu_check.json}
py=${PYTHON:-python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA device')" || exit 1
timeout 120 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py --junitxml "$tmp/tests.xml" >"$tmp/tests.txt" 2>&1
echo "cuda tests: exit $? — $(tail -n 1 "$tmp/tests.txt")"
for precision in bf16 fp32; do
  timeout 170 "$py" eval/bench_hbird.py --gpu-run --precision "$precision" --out "$tmp/eval_$precision.json" \
    >"$tmp/eval_$precision.txt" 2>&1
  echo "gpu-run $precision: exit $?"; grep -E "backbone alone|whole evaluation|evaluation / backbone" "$tmp/eval_$precision.txt"
done
"$py" - "$tmp" "$out" <<'PY'
import json, pathlib, sys
tmp, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
report = {"tests": (tmp / "tests.txt").read_text()[-4000:] if (tmp / "tests.txt").exists() else None}
for precision in ("bf16", "fp32"):
    result = tmp / f"eval_{precision}.json"
    report[precision] = json.loads(result.read_text()) if result.exists() else {
        "failed": (tmp / f"eval_{precision}.txt").read_text()[-4000:]}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(report, indent=1))
print(f"wrote {out}")
PY
