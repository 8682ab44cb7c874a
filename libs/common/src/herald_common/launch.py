"""`python -m herald_common.launch …`: Dramatiq's command line (`dramatiq …`, or
`dramatiq-gevent …` when HERALD_WORKER_POOL=gevent), with Herald's log format in every process
it starts — its own, the worker processes and the fork processes — instead of Dramatiq's.

run_worker execs it with the service's own interpreter. Dramatiq sets its processes' logging up
through three module functions (`setup_parent_logging`, `setup_worker_logging`,
`setup_fork_logging`); they are replaced before its `main` runs. Started with `spawn`, each
child imports this module again (as `__mp_main__`) and so gets the same replacements, and the
same gevent patching, which must come before anything else is imported.
"""

from __future__ import annotations

import os

if os.environ.get("HERALD_WORKER_POOL") == "gevent":  # as the dramatiq-gevent script does
    from gevent import monkey

    monkey.patch_all()

import logging
import sys
from collections.abc import Callable
from typing import IO, Any

from dramatiq import cli

from herald_common.logs import configure_logging
from herald_common.settings import get_settings


def _parent_logging(args: Any, *, stream: IO[str] = sys.stderr) -> logging.Logger:
    configure_logging(get_settings(), stream=stream)
    return cli.get_logger("dramatiq", "MainProcess")


def _child_logging(prefix: str) -> Callable[[Any, int, Any], logging.Logger]:
    def setup(args: Any, child_id: int, logging_pipe: Any) -> logging.Logger:
        # As Dramatiq does: everything the child prints goes through the pipe to the parent.
        sys.stdout = logging_pipe
        sys.stderr = logging_pipe
        configure_logging(get_settings(), stream=logging_pipe)
        return cli.get_logger("dramatiq", f"{prefix}({child_id})")

    return setup


cli.setup_parent_logging = _parent_logging
cli.setup_worker_logging = _child_logging("WorkerProcess")
cli.setup_fork_logging = _child_logging("ForkProcess")


def main() -> None:
    """Run Dramatiq's command line with these arguments."""
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
