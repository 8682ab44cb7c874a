"""`--profile DIR`: py-spy attached to a service while a part measures it, and a summary.

py-spy samples the running processes (the `dramatiq` parent and its worker processes, or the
gunicorn master and its workers) from outside, so the service runs exactly as it does
unprofiled, apart from the sampling's own small cost (it reads the processes' memory; it does
not stop them unless asked). It writes the samples as collapsed stacks (`--format raw`), one
line per distinct stack with its count, which `summarise` reads into two tables:

* self: the functions the samples were in (where the CPU is spent);
* inclusive: Herald's functions on the stack (what the time was spent under), counted once
  per sample however deep the recursion.

Only samples of the thread holding the interpreter lock count (`--gil`): a thread blocked in
a socket read, or waiting on PostgreSQL in psycopg's C code (which py-spy's idle detection
takes for active), is not counted, so the profile is of the interpreter's CPU.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

#: Samples per second (py-spy's default is 100).
RATE = 250

#: Frames of Herald's own code (and the benchmark's), shown in the inclusive table.
OWN = ("herald_", "bench.")


@dataclass
class Recording:
    """One py-spy run, recording until stopped."""

    name: str
    path: Path
    proc: subprocess.Popen[bytes] | None

    def stop(self) -> Path | None:
        """Stop recording; the collapsed-stack file, or None when py-spy could not run."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.path if self.path.exists() and self.path.stat().st_size else None


def record(name: str, pid: int, directory: Path) -> Recording:
    """Start py-spy on `pid` and its subprocesses, writing DIRECTORY/NAME.txt."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.txt"
    spy = shutil.which("py-spy")
    if spy is None:
        print("profile: py-spy is not installed (it is one of the dev tools: `make install`)")
        return Recording(name, path, None)
    log = (directory / f"{name}.py-spy.log").open("wb")
    proc = subprocess.Popen(
        [
            *(spy, "record", "--pid", str(pid), "--subprocesses", "--gil", "--rate", str(RATE)),
            *("--format", "raw", "--output", str(path), "--nonblocking"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Recording(name, path, proc)


# A frame as py-spy writes it: `function (path/to/module.py:LINE)`.
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame_name(frame: str) -> str:
    """`module.function` for a frame, with the line number dropped."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.rsplit(marker, 1)[1]
            break
    module = path.removesuffix(".py").replace("/", ".")
    return f"{module}.{match['func']}"


@dataclass
class Profile:
    """A summary of one recording."""

    name: str
    samples: int = 0
    self_counts: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)

    def top(self, counter: Counter[str], n: int) -> list[tuple[str, float]]:
        """The `n` largest entries as (function, share of all samples)."""
        total = max(self.samples, 1)
        return [(name, count / total) for name, count in counter.most_common(n)]

    def table(self, n: int = 15) -> str:
        """Markdown: the top `n` functions by self share, and Herald's by inclusive share."""
        lines = [
            f"**{self.name}**: {self.samples:,} samples holding the GIL at {RATE}/s",
            "",
            "| self | function | | inclusive | Herald's function |",
            "|---:|---|---|---:|---|",
        ]
        herald = Counter({k: v for k, v in self.inclusive.items() if k.startswith(OWN)})
        rows = zip(self.top(self.self_counts, n), self.top(herald, n), strict=False)
        for (self_name, self_share), (inc_name, inc_share) in rows:
            lines.append(f"| {self_share:.1%} | `{self_name}` | | {inc_share:.1%} | `{inc_name}` |")
        return "\n".join(lines)


def summarise(name: str, path: Path) -> Profile:
    """Read a collapsed-stack file (`frame;frame;… COUNT` per line)."""
    profile = Profile(name)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # py-spy starts each stack with the process and thread (`process 123:"…"`, `thread …`).
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        names = [_frame_name(f) for f in frames]
        profile.samples += count
        profile.self_counts[names[-1]] += count
        for function in set(names):
            profile.inclusive[function] += count
    return profile
