"""The batch encoder: frames in, 84×84 visual observations and embeddings out.

torch is imported here only, lazily, when the first batch is encoded. The
default network is a Nature-CNN (Mnih et al. 2015) with seeded weights (or a
weights file), run under ``torch.inference_mode``; on CUDA the batch goes
through pinned memory with non-blocking copies and autocast.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from operators.errors import ConfigError, EncodeError
from operators.resolve import resolve_attr

__all__ = ["OBS_SIZE", "Encoder", "NatureCNN", "area_resize"]

OBS_SIZE = 84


def _torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ImportError as ex:  # pragma: no cover - torch is a core dependency
        msg = (
            "the batch encoder needs PyTorch: `pip install torch` "
            "(CPU-only: `pip install torch --index-url https://download.pytorch.org/whl/cpu`)"
        )
        raise ImportError(msg) from ex


def NatureCNN(embed_dim: int = 256) -> Any:
    """The Nature-DQN convolutional trunk for 3×84×84 inputs, ending in ``embed_dim`` features."""
    nn = _torch().nn
    return nn.Sequential(
        nn.Conv2d(3, 32, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, embed_dim),
        nn.ReLU(),
    )


_AREA_WINDOWS: dict[tuple[int, int, int], tuple[np.ndarray, ...]] = {}
"""Per (height, width, size): the integral image's four corner indices of each output
pixel's window, and the window's pixel count (about 0.3 MB for 84x84)."""


def _windows(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Each output cell's input window ``[start, end)``, as torch's adaptive average
    pooling (``F.interpolate(mode="area")``) takes it: ``floor(i·n/m)`` to
    ``ceil((i+1)·n/m)``."""
    i = np.arange(n_out)
    return (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)


def area_resize(image: np.ndarray, size: int = OBS_SIZE) -> np.ndarray:
    """``(H, W, C)`` uint8 to ``(size, size, C)`` uint8: each output pixel the mean of
    its window of input pixels, rounded half to even, exactly as
    ``torch.nn.functional.interpolate(mode="area")`` and ``round()`` make it (the CUDA
    path), from an integral image (exact integer sums) and four lookups a pixel.
    OpenCV's ``INTER_AREA`` weighs the pixels straddling a window's edge by fractions
    instead, and differs by a few levels.

    >>> img = np.arange(4 * 6 * 1, dtype=np.uint8).reshape(4, 6, 1)
    >>> area_resize(img, 2)[..., 0].tolist()
    [[4, 7], [16, 19]]
    """
    h, w, c = image.shape
    if h == 0 or w == 0:
        msg = f"area_resize needs a picture; got shape {image.shape}"
        raise ValueError(msg)
    key = (h, w, size)
    win = _AREA_WINDOWS.get(key)
    if win is None:
        if len(_AREA_WINDOWS) >= 64:  # a window resized again and again: start over
            _AREA_WINDOWS.clear()
        (y0, y1), (x0, x1) = _windows(h, size), _windows(w, size)
        row = w + 1  # the integral image is (h + 1, w + 1, c)
        corners = [
            (ya[:, None] * row + xa[None, :]).ravel()
            for ya, xa in ((y1, x1), (y0, x1), (y1, x0), (y0, x0))
        ]
        count = ((y1 - y0)[:, None] * (x1 - x0)[None, :]).ravel().astype(np.float64)
        win = _AREA_WINDOWS.setdefault(key, (*corners, count[:, None]))
    i11, i01, i10, i00, count = win
    depth = cv2.CV_32S if 255 * h * w < 2**31 else cv2.CV_64F
    sums = cv2.integral(np.ascontiguousarray(image), sdepth=depth).reshape(-1, c)
    take = sums.take  # np.take: a tenth of the time of fancy indexing on a 2-D array
    total = take(i11, axis=0) - take(i01, axis=0) - take(i10, axis=0) + take(i00, axis=0)
    return np.rint(total / count).astype(np.uint8).reshape(size, size, c)


class Encoder:
    """Encodes a list of ``(H, W, 3)`` uint8 RGB frames in one torch call.

    ``encode(images)`` returns ``(visual, embedding)``: ``(N, 84, 84, 3)``
    uint8 and ``(N, D)`` float32 numpy arrays, one row per input, in order.
    Frames are area-resized to 84x84 (on a CUDA device by torch, on the CPU by
    :func:`area_resize`: the same windows and rounding, so the two give the same
    ``visual`` bit for bit and a policy trained on one sees the same picture on the
    other) and rounded to the uint8 ``visual``, which the network sees scaled to
    0..1. ``network`` is a
    ``"module:attr"`` factory returning a ``torch.nn.Module`` that maps
    ``(N, 3, 84, 84)`` floats in 0..1 to ``(N, D)``; ``weights`` an optional
    ``state_dict`` file for it. ``network = "none"``: no network, the visual
    observation only, and ``(N, 0)`` embeddings (the Gymnasium env's observation
    has no embedding, so the training presets skip the network's 0.3-0.7 ms a frame).
    """

    def __init__(
        self,
        device: str = "auto",
        network: str = "operators.batch.encoder:NatureCNN",
        network_kwargs: dict[str, Any] | None = None,
        weights: str | None = None,
        seed: int = 0,
        autocast: bool = True,
        threads: int = 0,
    ) -> None:
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            msg = f"batch.options.device = {device!r} is not valid; expected one of 'auto', 'cpu', 'cuda', 'cuda:N'"
            raise ConfigError(msg)
        if network != "none" and ":" not in network:
            msg = f"batch.options.network = {network!r}: expected 'module:attr' or 'none'"
            raise ConfigError(msg)
        self.device_name = device
        self.network = network
        self.network_kwargs = dict(network_kwargs or {})
        self.weights = weights
        self.seed = seed
        self.autocast = autocast
        self.threads = threads
        self._model: Any = None
        self._device: Any = None
        self._pinned: Any = None  # reused page-locked staging buffer (CUDA)
        self._copied: Any = None  # event after the last copy out of it
        self._copiers: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        """The device batches run on (loads the network to find out)."""
        self._load()
        return str(self._device)

    @property
    def loaded_device(self) -> str:
        """The device once loaded, else the configured choice (``auto``...); never loads."""
        return self.device_name if self._device is None else str(self._device)

    def _load(self) -> None:
        with self._lock:
            if self._device is not None:
                return
            torch = _torch()
            if self.threads > 0:
                torch.set_num_threads(self.threads)
            if self.device_name == "auto":
                dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            else:
                dev = torch.device(self.device_name)
                if dev.type == "cuda" and not torch.cuda.is_available():
                    msg = f"batch.options.device = {self.device_name!r} but CUDA is not available"
                    raise ConfigError(msg)
            if self.network == "none":  # the picture only: no network to load
                self._device = dev
                return
            factory = resolve_attr(self.network, "batch.options.network")
            gen_state = torch.random.get_rng_state()
            torch.manual_seed(self.seed)
            model = factory(**self.network_kwargs)
            torch.random.set_rng_state(gen_state)
            if self.weights:
                model.load_state_dict(
                    torch.load(self.weights, map_location="cpu", weights_only=True)
                )
            self._model = model.to(dev).eval()
            self._device = dev  # last: set means loaded

    def _staged(self, frames: list[np.ndarray]) -> Any:
        """The frames copied into a reused pinned host buffer, ready for a non-blocking copy.

        Pinning a fresh tensor per batch (``pin_memory()``) allocates page-locked
        memory each time, which costs more than the copy; the buffer grows to the
        largest batch seen and is reused. The previous batch's copy is waited for
        before the buffer is overwritten.
        """
        torch = _torch()
        shape = (len(frames), *frames[0].shape)
        buf = self._pinned
        if buf is None or buf.numel() < int(np.prod(shape)):
            buf = self._pinned = torch.empty(
                int(np.prod(shape)), dtype=torch.uint8, pin_memory=True
            )
        if self._copied is not None:
            self._copied.synchronize()
        host = buf[: int(np.prod(shape))].view(shape)
        arr = host.numpy()
        if len(frames) >= 4 and arr[0].nbytes >= 1 << 20:
            # Big frames: copy on a few threads (np.copyto releases the GIL), the
            # host side of a batch is otherwise the slowest part of it.
            if self._copiers is None:
                self._copiers = ThreadPoolExecutor(4, thread_name_prefix="framewax-stage")
            list(self._copiers.map(lambda i: np.copyto(arr[i], frames[i]), range(len(frames))))
        else:
            for i, f in enumerate(frames):
                np.copyto(arr[i], f)
        self._copied = torch.cuda.Event()
        return host

    def warm_up(self) -> None:
        """Load the network and run one frame through it."""
        self.encode([np.zeros((OBS_SIZE, OBS_SIZE, 3), np.uint8)])

    def close(self) -> None:
        """Stop the host-copy threads (CUDA); the network stays loaded."""
        copiers, self._copiers = self._copiers, None
        if copiers is not None:
            copiers.shutdown(wait=True)

    def encode(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if not images:
            msg = "encode() needs at least one frame"
            raise EncodeError("empty", msg)
        self._load()
        torch = _torch()
        dev, cuda = self._device, self._device.type == "cuda"
        if self._model is None and not cuda:  # network = "none": the picture only
            return self._visual(images), np.zeros((len(images), 0), np.float32)
        with torch.inference_mode():
            if cuda:
                visual, batch = self._resize_cuda(images)
            else:
                visual = self._visual(images)
                batch = torch.from_numpy(visual).permute(0, 3, 1, 2).float().div_(255.0)
            if self._model is None:
                return visual, np.zeros((len(images), 0), np.float32)
            with torch.autocast(dev.type, enabled=cuda and self.autocast):
                emb = self._model(batch)
            emb = emb.float()
            if emb.ndim != 2 or emb.shape[0] != len(images):
                msg = f"network returned shape {tuple(emb.shape)} for {len(images)} frames; expected (N, D)"
                raise EncodeError("shape", msg)
            return visual, emb.cpu().numpy()

    @staticmethod
    def _visual(images: Sequence[np.ndarray]) -> np.ndarray:
        """:func:`area_resize`, frame by frame, on the CPU (measured here: 0.2 ms a 320x240
        frame, 0.9 at 720p; torch's float round trip 0.5 and 9, OpenCV's ``INTER_AREA``
        0.3 and 3); the network sees the rounded picture the env gets."""
        visual = np.empty((len(images), OBS_SIZE, OBS_SIZE, 3), np.uint8)
        for i, img in enumerate(images):
            visual[i] = area_resize(img, OBS_SIZE)
        return visual

    def _resize_cuda(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, Any]:
        """Area resize on the device: one copy from pinned memory and one resize kernel
        per frame shape."""
        torch = _torch()
        F = torch.nn.functional
        dev = self._device
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(img.shape, []).append(i)
        resized: list[Any] = [None] * len(images)
        for idxs in groups.values():
            x = self._staged([images[i] for i in idxs]).to(dev, non_blocking=True)
            self._copied.record()  # the staging buffer is free once this is done
            x = F.interpolate(x.permute(0, 3, 1, 2).float(), size=(OBS_SIZE, OBS_SIZE), mode="area")
            for j, i in enumerate(idxs):
                resized[i] = x[j]
        # Round once, as the CPU path does: the network sees the picture the env gets.
        visual = torch.stack(resized).round().clamp(0, 255).to(torch.uint8)
        batch = visual.float().div_(255.0)
        return visual.permute(0, 2, 3, 1).cpu().numpy(), batch
