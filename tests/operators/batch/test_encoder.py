"""The CPU encoder's resize against torch's area interpolation (the CUDA path's)."""

import numpy as np
import pytest
import torch

from operators.batch.encoder import OBS_SIZE, Encoder, area_resize


def torch_area(image: np.ndarray, size: int = OBS_SIZE) -> np.ndarray:
    """What the CUDA path computes, on the CPU: ``interpolate(mode="area")``, rounded."""
    x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float()
    y = torch.nn.functional.interpolate(x, size=(size, size), mode="area")[0]
    return y.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    "shape",
    [(240, 320, 3), (180, 320, 3), (360, 640, 3), (720, 1280, 3), (101, 97, 3), (84, 84, 3),
     (50, 60, 3), (1, 1, 3), (240, 320, 1), (90, 160, 4)],
)  # fmt: skip
def test_area_resize_equals_torch_area_interpolation_bit_for_bit(shape):
    rng = np.random.default_rng(sum(shape))
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    # Coarse levels make exact ties (x.5), where the rounding rule shows.
    coarse = (rng.integers(0, 4, shape) * 85).astype(np.uint8)
    for image in (noise, coarse, np.full(shape, 255, np.uint8)):
        np.testing.assert_array_equal(area_resize(image), torch_area(image))


def test_area_resize_of_a_view_and_of_other_sizes():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    view = frame[10:250, 20:340]  # not contiguous
    np.testing.assert_array_equal(area_resize(view), torch_area(np.ascontiguousarray(view)))
    np.testing.assert_array_equal(area_resize(frame, 32), torch_area(frame, 32))


def test_the_cpu_encoder_visual_is_the_area_resize_and_the_network_sees_it():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(240, 320, 3), (180, 320, 3)]]
    encoder = Encoder(device="cpu", threads=1)
    visual, emb = encoder.encode(frames)
    assert visual.shape == (2, OBS_SIZE, OBS_SIZE, 3) and visual.dtype == np.uint8
    for v, f in zip(visual, frames, strict=True):
        np.testing.assert_array_equal(v, torch_area(f))
    # The embedding is the network's output on the rounded picture, scaled to 0..1.
    batch = torch.from_numpy(visual).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        expected = encoder._model(batch).float().numpy()
    np.testing.assert_allclose(emb, expected, rtol=1e-5, atol=1e-6)


def test_area_resize_refuses_an_empty_picture():
    with pytest.raises(ValueError, match="needs a picture"):
        area_resize(np.zeros((0, 10, 3), np.uint8))


def test_without_a_network_the_visual_is_the_same_and_the_embedding_empty():
    """``network = "none"`` (the training presets: the env's observation is the picture):
    the same 84x84 visual bit for bit, no embedding; a bad name is refused."""
    from operators.errors import ConfigError

    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(240, 320, 3), (180, 320, 3)]]
    full = Encoder(device="cpu", threads=1).encode(frames)
    bare = Encoder(device="cpu", threads=1, network="none")
    visual, emb = bare.encode(frames)
    np.testing.assert_array_equal(visual, full[0])
    assert emb.shape == (2, 0) and emb.dtype == np.float32 and full[1].shape[1] > 0
    assert bare._model is None and bare.device == "cpu"
    with pytest.raises(ConfigError, match="'module:attr' or 'none'"):
        Encoder(network="nothing")
