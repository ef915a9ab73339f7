#!/bin/bash
# Where the GPU time goes, for tuning (run on the GPU machine like tools/gpu_check.sh, BUILD =
# the carried build folder): per-op step profiles of the training benchmarks, the kernel list of
# one training step (Nsight Compute, one metric: the kernel's duration), and full Nsight Compute
# reports (details + SASS with stall reasons) of the selective-scan and attention kernels.
#   usage: BUILD=.devbuild bash tools/gpu_profile.sh [ops|kernels|ncu|all]
set -uo pipefail
OUT=${OUT:-/tmp/lmf_out}
B=${BUILD:-build-cuda}
WHAT=${1:-all}
mkdir -p "$OUT"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
has() { [ "$WHAT" = all ] || [ "$WHAT" = "$1" ]; }

if has ops; then
  for a in "--shape 130m --batch 8 --seqlen 1024" "--shape 130m --batch 4 --seqlen 4096"; do
    timeout 120 "$B/bin/bench_mamba_train" $a --profile
  done
  timeout 120 "$B/bin/bench_encoder" --config configs/models/mbert-base.json --batch 32 --seqlen 128 --profile
  timeout 120 "$B/bin/bench_encoder" --config configs/models/mmbert-base.json --batch 32 --seqlen 128 --profile
  timeout 150 "$B/bin/bench_encoder" --config configs/models/mmbert-base.json --batch 4 --seqlen 8192 --varlen --profile
fi 2>&1 | { has ops && tee "$OUT/op_profiles.jsonl" || cat; }

# Kernel durations of one step: name, grid, duration (ns), one row per launch.
kernel_list() {  # out.csv, command...
  timeout 240 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --page raw "${@:2}" \
    > "$OUT/$1" 2> "$OUT/$1.err"
  python3 - "$OUT/$1" <<'PY'
import csv, sys, collections
rows = list(csv.reader(open(sys.argv[1])))
hdr = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
if hdr is None: print("no kernels in", sys.argv[1]); sys.exit()
h = rows[hdr]; k = h.index("Kernel Name"); t = h.index("gpu__time_duration.sum")
tot = collections.defaultdict(lambda: [0, 0.0])
for r in rows[hdr + 2:]:
    try: tot[r[k][:90]][0] += 1; tot[r[k][:90]][1] += float(r[t].replace(",", ""))
    except (ValueError, IndexError): pass
s = sum(v[1] for v in tot.values())
print(f"== {sys.argv[1]}: {sum(v[0] for v in tot.values())} launches, {s/1e6:.2f} ms of kernels")
for name, (n, ns) in sorted(tot.items(), key=lambda x: -x[1][1])[:40]:
    print(f"{ns/1e6:9.3f} ms {n:6d}x  {name}")
PY
}
if has kernels && [ -n "$NCU" ]; then
  kernel_list mamba130m_kernels.csv "$B/bin/bench_mamba_train" --shape 130m --batch 8 --seqlen 1024 --warmup 1 --steps 1
  kernel_list mbert_kernels.csv "$B/bin/bench_encoder" --config configs/models/mbert-base.json --batch 32 \
    --seqlen 128 --warmup 1 --steps 1
fi 2>&1 | { has kernels && tee "$OUT/kernel_lists.txt" || cat; }

full_report() {  # name kernel-regex count command...
  timeout 240 "$NCU" --clock-control none --set full --import-source no -k "regex:$2" -c "$3" \
    -f -o "/tmp/$1" "${@:4}" > "/tmp/$1.log" 2>&1
  "$NCU" --import "/tmp/$1.ncu-rep" --page details > "$OUT/$1_details.txt" 2>&1
  "$NCU" --import "/tmp/$1.ncu-rep" --page source --print-source sass --csv > "/tmp/$1_sass.csv" 2>&1
  gzip -c "/tmp/$1_sass.csv" > "$OUT/$1_sass.csv.gz"
}
if has ncu && [ -n "$NCU" ]; then
  full_report scan 'scan_' 6 "$B/bin/bench_mamba_kernels" --shape 130m --runs 1 --warmup 0
  full_report attn 'tc_kernel' 3 "$B/bin/bench_attention" --case uniform_4x8192 --iters 1 --warmup 0
fi
ls -la "$OUT"
