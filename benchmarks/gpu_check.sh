#!/usr/bin/env bash
# One prepared run on a GPU machine: the CUDA tests, then the benchmarks on the device.
# Usage (from the repository root, with the wheels deeplimit needs beyond the image in .whl/):
#   bash benchmarks/gpu_check.sh [OUT]
set -uo pipefail
out=${1:-${OUT:-/tmp/gpu}}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
echo "== CUDA tests"
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_special.py tests/test_network.py \
    tests/test_training_model.py tests/test_fused.py 2>&1 | tail -5
echo "== sampler benchmark, float64"
timeout 70 python3 benchmarks/bench_sampler.py --device cuda --repeat 2 --scale 20 2>&1 | tee "$out/bench_sampler_f64.txt"
echo "== sampler benchmark, float32"
timeout 60 python3 benchmarks/bench_sampler.py --device cuda --dtype float32 --repeat 2 --scale 20 2>&1 | tee "$out/bench_sampler_f32.txt"
echo "== fused engine (torch.compile, Triton) against eager law and torch.randn on the device"
timeout 200 python3 benchmarks/bench_sampler.py --device cuda --fused --fused-widths 4,64 \
    --dtype float32 --numbers 4194304 --repeat 3 --scale 20 2>&1 | tee "$out/bench_fused.txt"
echo "== training benchmark"
timeout 130 python3 benchmarks/bench_training.py --cuda --repeats 2 2>&1 | tee "$out/bench_training.txt"
echo "== reproduce hayou-fig1 on cuda"
timeout 60 python3 -m deeplimit reproduce hayou-fig1 --device cuda --out "$out/results" -q 2>&1 | tail -8
echo "== a sweep on cuda through the local executor (one worker per GPU)"
timeout 60 python3 -m deeplimit sweep examples/sweeps/hayou-fig1-smoke.toml --device cuda \
    --store "$out/store" -q 2>&1 | tail -4
