"""The header every benchmark's result file starts with: what ran, where, on what."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["run_header"]

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bytewax", "numpy", "opencv-python", "torch", "onnxruntime", "gymnasium", "vizdoom")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("+dirty" if dirty else "")


def run_header(benchmark: str) -> dict[str, Any]:
    """``benchmark``'s name, the command that reproduces it, the machine (cores, CPU,
    Python, platform), the versions that matter and the commit it ran at."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "benchmark": benchmark,
        "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": {p: v for p in PACKAGES if (v := _version(p)) is not None},
        "commit": _commit(),
    }
