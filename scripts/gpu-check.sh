#!/usr/bin/env bash
# dl4img on a GPU through XLA: numerics against the Go backend, training-step
# throughput against PyTorch CUDA, one table at the end.
#
# Build here (the GPU machine has no Go and no GDAL):  make gpu-binary
# Then, on the GPU machine, from the repository root:  bash scripts/gpu-check.sh
#
#   BIN=bin/dl4img-gpu   the binary (make gpu-binary: no GDAL, libc only)
#   OUT=/tmp/gpu-check   where results go (JSON per stage + gpu-check.md)
#   STEPS=30             timed steps per network (the median is reported)
#   WARMUP=5             PyTorch's untimed steps (cudnn autotuning); dl4img's
#                        first step, which compiles, is untimed
#   CTC_SECONDS=0        >0: also train captcha-ctc at the book's budget for
#                        at most that long and report the accuracy it reached
#   GPU_CHECK_DRY=1      no GPU: the Go backend, batch 2, 1 step, PyTorch CPU
#                        (checks the script's plumbing on any machine)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/dl4img-gpu}
OUT=${OUT:-/tmp/gpu-check}
STEPS=${STEPS:-30}
WARMUP=${WARMUP:-5}
CTC_SECONDS=${CTC_SECONDS:-0}
DRY=${GPU_CHECK_DRY:-}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export GOMLX_NO_AUTO_INSTALL=1
log() { echo "== $*" >&2; }
[ -x "$BIN" ] || { echo "gpu-check: $BIN missing: run 'make gpu-binary' first" >&2; exit 2; }

# 1. Plugin and device.
if [ -n "$DRY" ]; then
	BACKEND=go TORCH_DEVICE=cpu DEVICE="CPU (dry run)" STEPS=1 WARMUP=1
	B_CNN=2 B_CRNN=2 B_FCN=2
else
	PLUGIN=${PJRT_PLUGIN:-}
	if [ -z "$PLUGIN" ]; then
		# The Python that has JAX knows where its plugin is.
		PLUGIN=$("$PY" - <<'EOF' 2>/dev/null
import glob, os, site, sys
for s in site.getsitepackages() + [site.getusersitepackages()]:
    for p in sorted(glob.glob(os.path.join(s, "jax_plugins", "xla_cuda*", "xla_cuda_plugin.so"))):
        print(p); sys.exit(0)
EOF
)
	fi
	[ -n "$PLUGIN" ] && [ -f "$PLUGIN" ] || { echo "gpu-check: no jax_plugins/xla_cuda*/xla_cuda_plugin.so found (set PJRT_PLUGIN)" >&2; exit 2; }
	SITE=$(dirname "$(dirname "$(dirname "$PLUGIN")")")
	# The plugin's CUDA libraries and ptxas come from the pip 'nvidia' packages
	# beside it (or a system CUDA).
	for d in "$SITE"/nvidia/*/lib "$SITE"/nvidia/*/*/lib; do
		[ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	done
	export LD_LIBRARY_PATH
	for d in "$SITE"/nvidia/*/bin "$SITE"/nvidia/*/*/bin /usr/local/cuda/bin; do
		if [ -x "$d/ptxas" ]; then
			export PATH="$d:$PATH" XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_cuda_data_dir=$(dirname "$d")"
			break
		fi
	done
	BACKEND="xla:$PLUGIN" TORCH_DEVICE=cuda
	DEVICE=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
	B_CNN=128 B_CRNN=128 B_FCN=32
	log "plugin $PLUGIN"
	log "device $DEVICE"
	log "ptxas $(command -v ptxas || echo 'not found: XLA compiles PTX through the driver')"
	# What a user gets with --backend auto (the default): the plugin of the
	# python3 on PATH, found without any setting.
	log "auto: $(PATH="$(dirname "$(command -v "$PY")"):$PATH" "$BIN" backend-check --backend auto --batch 1 transfer 2>&1 | tail -1)"
fi
echo "$DEVICE" >"$OUT/device.txt"

# 2. Numerics: the same batch and weights as testdata/gpu/check-go.json (the
# Go backend on the development machine), with TF32 off on the GPU: its
# 10-bit mantissa would dominate the error.
log "numerics vs the Go backend"
CHECK_BACKEND=$BACKEND
[ -z "$DRY" ] && CHECK_BACKEND="$BACKEND,tf32=false"
NVIDIA_TF32_OVERRIDE=0 "$BIN" backend-check --backend "$CHECK_BACKEND" --ref testdata/gpu/check-go.json \
	--out "$OUT/check.json" 2>&1 | tee "$OUT/check.txt"
check_rc=${PIPESTATUS[0]}

# 3 and 4. Training-step throughput: dl4img (XLA) and PyTorch, same nets and
# batches, median of STEPS after WARMUP; GPU memory = peak used by the
# process as nvidia-smi sees it (PyTorch also reports its own reservation).
gpu_mem_watch() {
	[ -n "$DRY" ] && return
	nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$1" 2>/dev/null &
	echo $!
}
peak_of() { sort -n "$1" 2>/dev/null | tail -1; }
: >"$OUT/bench.jsonl"
for spec in "captcha-cnn:$B_CNN" "crnn:$B_CRNN" "fcn:$B_FCN"; do
	net=${spec%%:*} batch=${spec##*:}
	idle=$( [ -z "$DRY" ] && nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1 || echo 0)
	log "dl4img $net batch $batch"
	w=$(gpu_mem_watch "$OUT/mem-dl4img-$net.txt")
	# dl4img's first step (compilation) is untimed; the median of STEPS
	# absorbs any slower step after it.
	r=$("$BIN" bench "$net" --batch "$batch" --steps "$STEPS" --backend "$BACKEND" --json 2>"$OUT/bench-$net.err")
	[ -n "${w:-}" ] && kill "$w" 2>/dev/null
	if [ -n "$r" ]; then
		echo "{\"impl\":\"dl4img\",\"idle_mib\":${idle:-0},\"peak_mib\":$(peak_of "$OUT/mem-dl4img-$net.txt" || echo 0),\"r\":$r}" >>"$OUT/bench.jsonl"
	else
		log "dl4img $net failed: $(tail -3 "$OUT/bench-$net.err")"
	fi
	log "PyTorch $net batch $batch"
	w=$(gpu_mem_watch "$OUT/mem-torch-$net.txt")
	r=$("$PY" bench/torch_ref.py --nets "$net" --batch "$batch" --steps "$STEPS" --warmup "$WARMUP" --device "$TORCH_DEVICE" --threads 16 --json 2>"$OUT/torch-$net.err" | tail -1)
	[ -n "${w:-}" ] && kill "$w" 2>/dev/null
	if [ -n "$r" ]; then
		echo "{\"impl\":\"torch\",\"idle_mib\":${idle:-0},\"peak_mib\":$(peak_of "$OUT/mem-torch-$net.txt" || echo 0),\"r\":$r}" >>"$OUT/bench.jsonl"
	else
		log "PyTorch $net failed: $(tail -3 "$OUT/torch-$net.err")"
	fi
done

# 5. Optional: captcha-ctc at the book's budget (the kind's defaults: 51,200
# samples per epoch, batch 128, Adam 1e-3 then 1e-4 with best-checkpoint
# reload; 40 epochs), cut at CTC_SECONDS; the job stays resumable.
if [ "$CTC_SECONDS" -gt 0 ]; then
	log "captcha-ctc, book budget, at most ${CTC_SECONDS}s"
	timeout -s INT "$CTC_SECONDS" "$BIN" --db "$OUT/ctc.db" --workdir "$OUT/runs" run captcha-ctc --backend "$BACKEND" \
		--set epochs=40 >"$OUT/ctc.log" 2>&1
	echo "exit $?" >>"$OUT/ctc.log"
	"$BIN" --db "$OUT/ctc.db" jobs show 1 >>"$OUT/ctc.log" 2>&1
fi

# The table, printed last.
"$PY" - "$OUT" <<'EOF' | tee "$OUT/gpu-check.md"
import json, os, sys
out = sys.argv[1]
print("device: " + open(os.path.join(out, "device.txt")).read().strip())
print()
print("| net (batch) | dl4img s/step | steps/s | GPU MiB | PyTorch s/step | steps/s | GPU MiB | dl4img/PyTorch throughput |")
print("|---|---|---|---|---|---|---|---|")
rows = {}
for line in open(os.path.join(out, "bench.jsonl")):
    e = json.loads(line)
    rows.setdefault((e["r"]["net"], e["r"]["batch"]), {})[e["impl"]] = e
for (net, batch), v in rows.items():
    cells, steps = [], {}
    for impl in ("dl4img", "torch"):
        e = v.get(impl)
        if not e:
            cells += ["failed", "", ""]
            continue
        s = e["r"]["median_step_ns"] / 1e9
        steps[impl] = 1 / s
        mem = e["peak_mib"] - e["idle_mib"] if e["peak_mib"] else 0
        if impl == "torch" and "peak_gpu_bytes" in e["r"]:
            mem = "%d (reserved %d)" % (mem, e["r"]["peak_gpu_bytes"] >> 20)
        cells += ["%.4f" % s, "%.1f" % (1 / s), str(mem)]
    ratio = "%.2f" % (steps["dl4img"] / steps["torch"]) if len(steps) == 2 else ""
    print("| %s (%d) | %s | %s |" % (net, batch, " | ".join(cells), ratio))
print()
print("numerics vs the Go backend (testdata/gpu/check-go.json, TF32 off):")
for line in open(os.path.join(out, "check.txt")):
    print("    " + line.rstrip())
EOF
exit "$check_rc"
