"""The directory where a pod's processes write their Prometheus samples.

prometheus_client decides at its first import whether samples go to PROMETHEUS_MULTIPROC_DIR,
so an entry point that runs several processes (gunicorn, `dramatiq --processes`) calls
`use_metrics_dir` before anything imports it; this module must never import it either.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def use_metrics_dir(configured: str | None, *, prefix: str) -> str:
    """Make this pod's samples directory — PROMETHEUS_MULTIPROC_DIR when it is set, else
    `configured` (METRICS_DIR), else a new temporary one — empty, and point
    PROMETHEUS_MULTIPROC_DIR at it; the directory."""
    chosen = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or configured
    if chosen:
        directory = Path(chosen)
        directory.mkdir(parents=True, exist_ok=True)
        # Samples of an earlier run would be added to this one's. Only prometheus_client's
        # own files go: the directory may be shared with something else by mistake.
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return str(directory)
