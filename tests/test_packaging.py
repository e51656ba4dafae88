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


def test_every_package_goes_into_the_distribution():
    """A non-editable install gets every package: ``pyproject.toml``'s package list once
    named only the top ones (``flows``, ``operators``, ``sinks``), which an editable
    install hid, and a wheel would have shipped without ``flows.rl`` or
    ``operators.vision``."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    find = conf.get("packages", {})
    assert isinstance(find, dict) and "find" in find, "packages must be found, not listed"
    include, exclude = find["find"].get("include", ["*"]), find["find"].get("exclude", [])
    packages = {
        str(p.parent.relative_to(root)).replace("/", ".")
        for top in ("flows", "operators", "sinks")
        for p in (root / top).rglob("__init__.py")
    }
    assert {"flows.rl", "operators.vision", "operators.vision.http"} <= packages
    missed = [
        name
        for name in sorted(packages)
        if not any(fnmatch.fnmatchcase(name, pat) for pat in include)
        or any(fnmatch.fnmatchcase(name, pat) for pat in exclude)
    ]
    assert not missed, missed
    assert "configs/*.toml" in conf["package-data"]["flows"]
