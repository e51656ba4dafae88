"""The environment the project installs into is consistent: one OpenCV, ``pip check`` clean."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

OPENCV_BUILDS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_exactly_one_opencv_build_is_installed():
    # Two builds unpack over one `cv2` directory: whichever installs last wins, and
    # uninstalling either breaks the other.
    builds = [b for b in OPENCV_BUILDS if _installed(b)]
    assert builds == ["opencv-python"], builds


def test_pip_check_is_clean():
    out = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_project_asks_for_one_opencv_build():
    requires = metadata.requires("framewax") or []
    named = {r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip() for r in requires}
    assert [b for b in OPENCV_BUILDS if b in named] == ["opencv-python"]
