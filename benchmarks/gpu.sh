#!/usr/bin/env bash
# The GPU fast path in one run (issue 15): pretraining images/s, MFU and peak GPU memory at batch 64 and 256,
# with and without torch.compile, the data pipeline with the augmentation on the GPU (views.output=crops: a
# worker's images/s per core and the device half's images/s), then a smoke evaluation of one dataset of every
# task on CUDA; a summary table at the end. Sized for under 10 minutes on one H100-class GPU (every step has a timeout, and all of
# them together stop at SAIP_GPU_BUDGET_S).
#
#   bash benchmarks/gpu.sh              # on a CUDA machine, from the repository root or anywhere
#   bash benchmarks/gpu.sh --dry-run    # anywhere: print the GPU commands, run the CPU-checkable parts (CI)
#   bash benchmarks/gpu.sh --print      # print the GPU commands only
#
# MFU = model FLOPs per step (FlopCounterMode over one forward + backward, as benchmarks/pretrain_step.py
# counts them on the CPU) / step time / the GPU's bf16 dense peak (pretrain_step.py's table by device name;
# an unknown GPU uses a measured bf16 matmul and says so).
#
# Order: eager pretraining at each batch size, the task smokes, then the compiled runs (the slowest and least
# certain part comes last, so a budget it exhausts is its own).
#
# Environment: SAIP_GPU_OUT (logs; default a new temporary folder), SAIP_GPU_BUDGET_S (default 570),
# SAIP_GPU_STEP_TIMEOUT_S (default 150), SAIP_GPU_STEPS (timed pretraining steps per run, default 10),
# SAIP_GPU_BATCHES (default "64 256"), SAIP_GPU_TASKS (only these tasks' smokes, e.g. "reid pose"),
# SAIP_GPU_DEVICE (default cuda; cpu runs the full sequence on a CPU, to check the script itself) and
# SAIP_GPU_BENCH_EXTRA (more pretrain_step.py options, e.g. "--tiny" for such a check).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=gpu
case "${1:-}" in
  "") ;;
  --dry-run) mode=dry ;;
  --print) mode=print ;;
  -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "gpu.sh: unknown option $1 (--dry-run, --print)" >&2; exit 2 ;;
esac

if [[ $mode == print ]]; then
  out=${SAIP_GPU_OUT:-OUT}
else
  out=${SAIP_GPU_OUT:-$(mktemp -d -t saip-gpu-XXXXXX)}
  mkdir -p "$out"
fi
budget=${SAIP_GPU_BUDGET_S:-570}
step_timeout=${SAIP_GPU_STEP_TIMEOUT_S:-150}
bench_steps=${SAIP_GPU_STEPS:-10}
read -r -a batches <<<"${SAIP_GPU_BATCHES:-64 256}"
device=${SAIP_GPU_DEVICE:-cuda}
bench_extra=${SAIP_GPU_BENCH_EXTRA:-}
start=$(date +%s)
py=${PYTHON:-python}
# One dataset per task; pose, detection and fashion run through the OpenMMLab stack (skipped without it).
smoke_sets=(reid:market1501 text_retrieval:cuhk_pedes attribute:pa100k pose:coco_keypoints parsing:lip
  detection:crowdhuman fashion:fashionpedia)
if [[ -n ${SAIP_GPU_TASKS:-} ]]; then
  kept=()
  for pair in "${smoke_sets[@]}"; do
    if [[ " $SAIP_GPU_TASKS " == *" ${pair%%:*} "* ]]; then kept+=("$pair"); fi
  done
  smoke_sets=("${kept[@]}")
fi

names=() statuses=() seconds=() results=()
failed=0

# run NAME CMD...: the command under a timeout (its own, cut to what is left of the budget), its output in
# $out/NAME.log and on the console, one summary row; a failure is recorded and the script goes on.
run() {
  local name=$1; shift
  local left=$(( budget - ($(date +%s) - start) ))
  local limit=$(( left < step_timeout ? left : step_timeout ))
  local t0 rc=0 status result=""
  if (( limit < 5 )); then
    names+=("$name"); statuses+=("skipped"); seconds+=("-"); results+=("time budget of ${budget} s spent")
    failed=1
    return 0
  fi
  echo "[gpu.sh] $name (timeout ${limit} s): $*"
  t0=$(date +%s)
  set +e
  PYTHONUNBUFFERED=1 timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  case $rc in
    0) status=ok ;;
    124 | 137) status="timeout"; failed=1 ;;
    *) status="failed ($rc)"; failed=1 ;;
  esac
  local line
  line=$(sed -n 's/^summary: //p' "$out/$name.log" | tail -n 1)
  if [[ -n $line ]]; then
    result=$(bench_result "$line")
  elif grep -qE 'INFO [a-z0-9_]+ (finetune|linear|frozen): ' "$out/$name.log"; then  # saip evaluate
    result=$(grep -E 'INFO [a-z0-9_]+ (finetune|linear|frozen): ' "$out/$name.log" | tail -n 1 | sed 's/.* INFO //')
  else
    result=$(grep -v '^\s*$' "$out/$name.log" | tail -n 1 | cut -c 1-90)
  fi
  names+=("$name"); statuses+=("$status"); seconds+=("$(( $(date +%s) - t0 ))"); results+=("$result")
}

skip() {
  names+=("$1"); statuses+=("skipped"); seconds+=("-"); results+=("$2")
}

# The value of KEY in a "key=value key=value" summary line.
kv() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

bench_result() {
  local ips mfu mem rss
  ips=$(kv ours_images_per_s "$1"); mfu=$(kv ours_peak_fraction "$1")
  mem=$(kv peak_cuda_gb "$1"); rss=$(kv peak_rss_gb "$1")
  mfu=$(awk -v f="${mfu:-0}" 'BEGIN { printf "%.1f%%", 100 * f }')
  if [[ -n $mem ]]; then
    echo "${ips} images/s, MFU ${mfu}, peak GPU memory ${mem} GB"
  else
    echo "${ips} images/s, ${mfu} of the CPU matmul rate, peak RSS ${rss} GB"
  fi
}

summary() {
  echo
  echo "== gpu.sh summary ($mode mode, $(( $(date +%s) - start )) s; logs in $out) =="
  printf '%-26s %-12s %7s  %s\n' step status seconds result
  local i
  for i in "${!names[@]}"; do
    printf '%-26s %-12s %7s  %s\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}" "${results[$i]}"
  done
}

# Whether pretrain_step.py has a --compile flag (torch.compile of student and teacher).
compile_flag=no
if "$py" benchmarks/pretrain_step.py --help 2>/dev/null | grep -q -- '--compile'; then compile_flag=yes; fi

# "dataset:packages" for each smoke dataset whose OpenMMLab packages are not installed (one python call).
missing_mm_sets() {
  "$py" -c 'import sys
from saip_bench.datasets import DATASETS
from saip_bench.mm.available import missing_mm
for pair in sys.argv[1:]:
    name = pair.split(":")[1]
    gone = missing_mm(*DATASETS.get(name).needs)
    if gone:
        print(name + ":" + ",".join(gone))' "${smoke_sets[@]}"
}
missing=""
if [[ $mode != print ]]; then
  missing=$(missing_mm_sets) || { echo "gpu.sh: could not ask saip_bench which packages are installed" >&2; exit 1; }
fi
missing_for() { sed -n "s/^$1://p" <<<"$missing"; }

bench_cmd() {  # bench_cmd BATCH [--compile]
  echo "$py benchmarks/pretrain_step.py --device $device --precision bf16 --batch-size $1 --steps $bench_steps" \
    "--threads 8${2:+ $2}${bench_extra:+ $bench_extra}"
}

crops_cmd() {  # the data pipeline with views.output=crops: workers' share on this CPU, the device half on $device
  echo "$py benchmarks/pretrain_data.py --crops --crops-device $device --batch-size 256 --images 512" \
    "--seconds 10 --worker-seconds 20 --profile-seconds 0"
}

smoke_cmds() {  # smoke_cmds DEVICE DATA WS TASK:DATASET...: one "saip data synth" + "saip evaluate" per set
  local device=$1 data=$2 ws=$3; shift 3
  local pair
  for pair in "$@"; do
    echo "saip data synth --format ${pair#*:} --out $data --ids 16 --images 192"
    echo "saip evaluate --task ${pair%%:*} --dataset ${pair#*:} --backbone random:saip_vit_tiny_patch16" \
      "--data-root $data --workspace $ws --budget smoke --device $device"
  done
}

print_gpu_commands() {
  echo "# the GPU run:"
  local b
  for b in "${batches[@]}"; do
    bench_cmd "$b"
    if [[ $compile_flag == yes ]]; then
      bench_cmd "$b" --compile
    else
      echo "# (batch $b with --compile: pretrain_step.py has no --compile flag yet)"
    fi
  done
  crops_cmd
  smoke_cmds "$device" "$out/data" "$out/ws" "${smoke_sets[@]}"
}

if [[ $mode == print ]]; then
  print_gpu_commands
  exit 0
fi

if ! command -v saip >/dev/null; then
  echo "gpu.sh: the saip command is not on PATH (activate the environment: . .venv/bin/activate)" >&2
  exit 1
fi
trap summary EXIT

if [[ $mode == dry ]]; then
  print_gpu_commands
  echo "# dry run: the CPU-checkable parts${missing:+ (smokes the GPU run would skip here: ${missing//$'\n'/ })}"
  run bench-tiny-cpu $py benchmarks/pretrain_step.py --tiny --steps 1 --device cpu --threads 1
  run views-crops-cpu $py benchmarks/pretrain_data.py --recipe smoke_cpu --images 16 --crops --seconds 1 \
    --warmup-seconds 0.2 --worker-seconds 1 --profile-seconds 0
  run synth-market1501 saip data synth --format market1501 --out "$out/data" --ids 16 --images 192
  run smoke-reid-cpu saip evaluate --task reid --dataset market1501 --backbone random:saip_vit_tiny_patch16 \
    --data-root "$out/data" --workspace "$out/ws" --budget smoke --device cpu
  trap - EXIT
  summary
  exit "$failed"
fi

if [[ $device == cuda* ]] && ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu.sh: no CUDA device visible to torch (use --dry-run to check the script on a CPU machine)" >&2
  trap - EXIT
  exit 1
fi

run info $py -c 'import torch, timm
print("torch", torch.__version__, "cuda", torch.version.cuda, "timm", timm.__version__)
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).total_memory // 2**30, "GiB")'
for b in "${batches[@]}"; do
  # shellcheck disable=SC2046
  run "bench-b$b" $(bench_cmd "$b")
done
# shellcheck disable=SC2046
run views-crops-b256 $(crops_cmd)
for pair in "${smoke_sets[@]}"; do
  task=${pair%%:*} dataset=${pair#*:}
  missing=$(missing_for "$dataset")
  if [[ -n $missing ]]; then
    skip "smoke-$task" "$dataset needs $missing (README, 'The OpenMMLab stack')"
    continue
  fi
  run "synth-$dataset" saip data synth --format "$dataset" --out "$out/data" --ids 16 --images 192
  run "smoke-$task" saip evaluate --task "$task" --dataset "$dataset" --backbone random:saip_vit_tiny_patch16 \
    --data-root "$out/data" --workspace "$out/ws" --budget smoke --device "$device"
done
# Compiling is the slowest and least certain part: last, so the budget it may exhaust is its own.
for b in "${batches[@]}"; do
  if [[ $compile_flag == yes ]]; then
    # shellcheck disable=SC2046
    run "bench-b$b-compile" $(bench_cmd "$b" --compile)
  else
    skip "bench-b$b-compile" "pretrain_step.py has no --compile flag yet"
  fi
done
trap - EXIT
summary
exit "$failed"
