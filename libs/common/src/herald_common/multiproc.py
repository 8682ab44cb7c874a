"""The directory where a pod's processes write their Prometheus samples.

prometheus_client decides at its first import whether samples go to PROMETHEUS_MULTIPROC_DIR,
so an entry point that runs several processes (gunicorn, `dramatiq --processes`) calls
`use_metrics_dir` before anything imports it; this module must never import it either.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def use_metrics_dir(chosen: str | None, *, prefix: str) -> str:
    """Make `chosen` (or a new temporary directory) this pod's empty samples directory and
    point PROMETHEUS_MULTIPROC_DIR at it; the directory."""
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
