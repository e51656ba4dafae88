# The encoder's device check and benchmark, as run on the lent GPU machine:
#   bash benchmarks/device_encode.sh   (wheels for bytewax in .whl/, no network there)
set -e
python3 --version; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if ! python3 -c "import bytewax" 2>/dev/null; then
  python3 -m pip install -q --no-index --find-links .whl --target /tmp/pylib bytewax==0.21.1 2>&1 | grep -v WARNING || true
  export PYTHONPATH=/tmp/pylib
fi
python3 -c "import torch, bytewax; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 benchmarks/cuda_check.py
python3 benchmarks/encode.py --out ${OUT:-benchmarks/results}/encode-h100.json
python3 benchmarks/encode.py --out ${OUT:-benchmarks/results}/encode-h100-720p-240fps.json --frames 128 \
  --window-fps 240 --window-size 1280x720 --window-frames 1200 --window-max-size 16 --window-timeout-ms 20
