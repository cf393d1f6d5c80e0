#!/usr/bin/env bash
# ONNX backbones and the reference nets on dl4img's Go backend and in
# PyTorch CPU (2 threads), side by side in one run, same weights: the
# torchvision models are exported by bench/torch_ref.py from exactly the
# model it times. Prints one JSON line per measurement to stdout.
#
#   bash bench/backbones.sh [ONNX_DIR]     # from the repo root, after make build
#   bash bench/backbones.sh table [DIR]    # the README's table of torchvision backbones
#
# Needs Debian's python3-torch and python3-torchvision. Steps: STEPS (3)
# timed after one warm-up; NETS overrides the backbone list.
#
# "table" exports every torchvision architecture (bench/torchvision_table.py:
# random weights, 5-550 MB each, into DIR, default a new temporary folder;
# never commit them), then BenchmarkTorchvisionBackbones loads each in
# dl4img, compares its features with PyTorch's and times extraction in
# batches of BATCH (4) images, STEPS (3) timed batches; the markdown table
# goes to stdout, the raw lines to DIR/bench.log. NETS=a,b (or "all") picks
# the architectures; REUSE=1 keeps DIR's exports and PyTorch's numbers and
# reruns only dl4img. About 40 minutes on 2 quiet cores.
set -euo pipefail
if [ "${1:-}" = table ]; then
  export GOEXPERIMENT=${GOEXPERIMENT:-simd} GODEBUG=${GODEBUG:-cpu.fma=off} GOMLX_NO_AUTO_INSTALL=1
  dir=${2:-$(mktemp -d)}
  py=${PYTHON:-/usr/bin/python3}
  echo "exports in $dir; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  # REUSE=1 keeps DIR's exports (and PyTorch's numbers) and reruns dl4img.
  [ "${REUSE:-}" = 1 ] || "$py" bench/torchvision_table.py "$dir" ${NETS:+--nets "$NETS"} --batch "${BATCH:-4}" --steps "${STEPS:-3}" >&2
  DL4IMG_BACKBONES="$dir" DL4IMG_BATCH="${BATCH:-4}" go test ./transfer -run '^$' -bench TorchvisionBackbones \
    -benchtime "${STEPS:-3}x" -v -timeout 6h >"$dir/bench.log" 2>&1 || true
  "$py" bench/torchvision_table.py --markdown <"$dir/bench.log"
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  exit 0
fi
dir=${1:-bin/onnx}
steps=${STEPS:-3}
nets=${NETS:-resnet18 resnet50 mobilenetv2 inceptionv3}
py=${PYTHON:-/usr/bin/python3}
dl=./bin/dl4img
mkdir -p "$dir"
for n in $nets; do
  [ -f "$dir/$n.onnx" ] || "$py" bench/torch_ref.py --nets "$n" --steps 1 --batch 1 --export "$dir" >/dev/null 2>&1
  "$py" bench/torch_ref.py --nets "$n" --steps "$steps" --json 2>/dev/null
  "$dl" bench onnx --backend go --batch 16 --steps "$steps" --json "$dir/$n.onnx"
done
"$py" bench/torch_ref.py --nets resnet50 --steps "$steps" --finetune 3 --json 2>/dev/null
"$dl" bench onnx --backend go --batch 16 --steps "$steps" --finetune 3 --json "$dir/resnet50.onnx"
for n in captcha-cnn crnn fcn; do
  "$py" bench/torch_ref.py --nets "$n" --steps "$steps" --json 2>/dev/null
  "$dl" bench "$n" --backend go --steps "$steps" --json
done
