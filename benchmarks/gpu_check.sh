#!/usr/bin/env bash
# Everything that needs an NVIDIA GPU, in one run: the CUDA tests and the GPU figures of the README.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]          # all steps, logs in OUT_DIR (default /tmp/gpu-check)
#   STEPS="tests_gpu bench_train" bash benchmarks/gpu_check.sh    # only some steps (names below)
#   DEADLINE=500 bash benchmarks/gpu_check.sh       # skip the steps that would start after 500 s
#
# Steps: env, tests_gpu (pytest tests/gpu: prediction, blending on the device, AMP, out-of-memory under a
# memory cap, cancel, fine-tune with AMP, torchrun with NCCL, inspector, the window's Predict), bench_predict
# (tiled / raw forward, ours / MONAI, 8192^2 and 16384^2 with AMP on and off), bench_train (ours / plain
# loop), first_prediction (window start to first prediction), tests_more (tests/engine, tests/models, the
# window's prediction and inspector tests and the ONNX export check, with CUDA present), bench_slide
# (whole-slide prediction throughput).
#
# A machine without internet access can be given the Python packages segstudio needs beyond PyTorch as
# .gpu/site.tar.xz (unpacked onto PYTHONPATH) and the system libraries Qt needs as .gpu/syslibs.tar.xz
# (only those the machine lacks are used): benchmarks/gpu_pack.sh makes both.
set -u
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-/tmp/gpu-check}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
STEPS=${STEPS:-"env tests_gpu bench_predict bench_train first_prediction tests_more bench_slide"}
DEADLINE=${DEADLINE:-100000}
SCRATCH=$(mktemp -d)
export PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen
export SEGSTUDIO_DATA_DIR="$SCRATCH/data" XDG_CONFIG_HOME="$SCRATCH/config"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)

if [ -f .gpu/site.tar.xz ]; then
    mkdir -p "$SCRATCH/site" && tar -xJf .gpu/site.tar.xz -C "$SCRATCH/site" && export PYTHONPATH="$PYTHONPATH:$SCRATCH/site"
fi
if [ -f .gpu/syslibs.tar.xz ]; then
    mkdir -p "$SCRATCH/syslibs-all" "$SCRATCH/syslibs" && tar -xJf .gpu/syslibs.tar.xz -C "$SCRATCH/syslibs-all"
    for lib in "$SCRATCH"/syslibs-all/*.so*; do
        name=$(basename "$lib")
        ldconfig -p 2>/dev/null | awk '{print $1}' | grep -qxF "$name" || ln -sf "$lib" "$SCRATCH/syslibs/$name"
    done
    export LD_LIBRARY_PATH="$SCRATCH/syslibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    [ -d /etc/fonts ] || export FONTCONFIG_PATH="$SCRATCH/syslibs-all/etc-fonts"
    export QT_QPA_FONTDIR="$SCRATCH/syslibs-all/fonts"
fi

QT_OK=1
"$PY" -c "from PySide6.QtWidgets import QApplication; QApplication([])" >"$SCRATCH/qt.log" 2>&1 || QT_OK=0
PYTEST=("$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra --timeout=600")
[ "$QT_OK" = 1 ] || PYTEST+=(-p no:pytestqt)

SUMMARY="$OUT_DIR/summary.txt"
: >"$SUMMARY"

step() {  # step NAME TIMEOUT_S COMMAND...: runs when named in STEPS and the deadline allows
    local name=$1 limit=$2; shift 2
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    local now=$(( $(date +%s) - START ))
    if [ "$now" -ge "$DEADLINE" ]; then
        echo "$name: skipped (deadline $DEADLINE s reached at $now s)" | tee -a "$SUMMARY"; return 0
    fi
    local t0=$(date +%s)
    echo "=== $name (at $now s) ===" | tee -a "$OUT_DIR/$name.log"
    timeout --kill-after=10 "$limit" "$@" >>"$OUT_DIR/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc in $(( $(date +%s) - t0 )) s" | tee -a "$SUMMARY"
}

step env 60 bash -c "nvidia-smi; $PY -c 'import sys, torch, numpy; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"cudnn\", torch.backends.cudnn.version(), torch.cuda.get_device_name(0), \"numpy\", numpy.__version__)'; echo QT_OK=$QT_OK; cat $SCRATCH/qt.log; nproc; free -g"

GPU_TESTS=(tests/gpu)
[ "$QT_OK" = 1 ] || GPU_TESTS+=(--ignore=tests/gpu/test_cuda_window.py)
step tests_gpu 240 "${PYTEST[@]}" "${GPU_TESTS[@]}"

step bench_predict 200 "$PY" benchmarks/bench_predict.py --device cuda --batch 4 --size 4096 --rounds 3 \
    --sizes 8192,16384 --mem-size 8192

step bench_train 150 "$PY" benchmarks/bench_train.py --device cuda --base-channels 32 --depth 4 --crop 256 \
    --batch 16 --steps 150 --images 48 --size 512 --rounds 2

if [ "$QT_OK" = 1 ]; then
    step first_prediction 120 "$PY" benchmarks/bench_first_prediction.py --device cuda --runs 3
fi

MORE=(tests/engine tests/models tests/cli/test_models.py)
[ "$QT_OK" = 1 ] && MORE+=(tests/gui/prediction tests/gui/inspector tests/gui/test_model_host.py tests/gui/window/test_one_model.py)
[ -n "${MORE_TESTS:-}" ] && read -r -a MORE <<<"$MORE_TESTS"  # a rerun of only some of them
# These run on the CPU side too (tiny models, one thread each): spread them over the machine's cores.
XDIST=()
"$PY" -c "import xdist" 2>/dev/null && XDIST=(-n "${TEST_WORKERS:-8}" --dist loadfile)
step tests_more 240 "${PYTEST[@]}" "${XDIST[@]}" "${MORE[@]}"

step bench_slide 120 "$PY" benchmarks/bench_slide_predict.py --device cuda --sizes 20000 --folder "$SCRATCH/slides"

echo
echo "=== summary ($(( $(date +%s) - START )) s) ==="
cat "$SUMMARY"
for name in $STEPS; do
    [ -f "$OUT_DIR/$name.log" ] || continue
    echo "--- $name (last lines) ---"
    case $name in
        tests_*) grep -E "passed|failed|skipped|error|FAILED|ERROR" "$OUT_DIR/$name.log" | tail -25 ;;
        env) head -c 1500 "$OUT_DIR/$name.log" ;;
        *) tail -n 30 "$OUT_DIR/$name.log" ;;
    esac
done
rm -rf "$SCRATCH"
