"""CUDA encoder checks for a GPU machine: CUDA vs CPU outputs, batched vs per-frame, buffer reuse.

python benchmarks/cuda_check.py
"""

import sys

import numpy as np

sys.path.insert(0, ".")
from operators.batch.encoder import Encoder

rng = np.random.default_rng(0)
imgs = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(12)] + [
    rng.integers(0, 255, (360, 640, 3), dtype=np.uint8) for _ in range(4)
]
order = rng.permutation(len(imgs))
imgs = [imgs[i] for i in order]
gpu = Encoder(device="cuda", autocast=False)
cpu = Encoder(device="cpu")
vg, eg = gpu.encode(imgs)
vc, ec = cpu.encode(imgs)
print(
    "cuda vs cpu: visual max diff",
    int(np.abs(vg.astype(int) - vc.astype(int)).max()),
    "embedding max abs diff",
    float(np.abs(eg - ec).max()),
)
vs = np.concatenate([gpu.encode([im])[0] for im in imgs])
es = np.concatenate([gpu.encode([im])[1] for im in imgs])
print(
    "cuda batched vs per-frame: visual max diff",
    int(np.abs(vs.astype(int) - vg.astype(int)).max()),
    "embedding",
    float(np.abs(es - eg).max()),
)
# the staging buffer is reused: a second, different batch must not see the first's frames
v2, _ = gpu.encode(imgs[::-1])
print("reuse ok:", bool((v2[::-1] == vg).all()))
