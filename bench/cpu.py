"""CPU time spent by each part of the system during a measurement, read from /proc.

Groups: the processes of each service the run started (with their children), the PostgreSQL
and Redis servers (all their processes), this process (`self`), and `other`: the rest of the
machine. A busy `other` means the figure was taken on a shared, disturbed machine.

The machine is small (the figures are meant to be read against its core count), so where the
CPU went is the first thing to know about a figure: a process at 1.0 core for the whole run is
bound by its own interpreter; PostgreSQL near the machine's limit is bound by the database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")

#: Server processes measured by their command name (they are not our children).
SERVERS = {"postgres": "postgres", "redis": "redis-server"}


def _cpu_of(pid: int) -> tuple[str, float] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); `fields` starts at field 3.
    return comm, (int(fields[11]) + int(fields[12])) / _TICKS


def _server_cpu() -> dict[str, float]:
    totals = dict.fromkeys(SERVERS, 0.0)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _cpu_of(int(entry.name))):
            comm, seconds = found
            for group, name in SERVERS.items():
                if comm.startswith(name):
                    totals[group] += seconds
    return totals


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle (all cores), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    values = [int(v) for v in fields[:8]]
    return (sum(values) - values[3] - values[4]) / _TICKS


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds used so far, per group, at one moment."""

    at: float
    seconds: Mapping[str, float]


class CpuMeter:
    """Samples CPU time of named process groups (our children) and of the servers."""

    def __init__(self, groups: Callable[[], Mapping[str, list[int]]]) -> None:
        self._groups = groups

    def snapshot(self) -> Snapshot:
        seconds = _server_cpu()
        for group, pids in self._groups().items():
            seconds[group] = sum(found[1] for pid in pids if (found := _cpu_of(pid)))
        seconds["self"] = sum(os.times()[:2])
        # Everything else on the machine: other people's work disturbs a figure, and shows here.
        seconds["other"] = _machine_busy() - sum(seconds.values())
        return Snapshot(time.monotonic(), seconds)

    @staticmethod
    def cores(before: Snapshot, after: Snapshot) -> dict[str, float]:
        """Average cores each group used between two snapshots (1.0 = one core all the time)."""
        wall = max(after.at - before.at, 1e-9)
        return {
            group: round((after.seconds[group] - before.seconds.get(group, 0.0)) / wall, 2)
            for group in after.seconds
        }


def cpu_ms_per(cores: Mapping[str, float], wall: float, items: int, group: str) -> float:
    """Milliseconds of CPU `group` spent per item, from its average cores over `wall` s."""
    return cores.get(group, 0.0) * wall / items * 1000 if items else float("nan")


def format_cores(cores: Mapping[str, float]) -> str:
    """`publisher 0.98, postgres 0.61, …`: the busiest first, idle ones left out."""
    busy = sorted(((c, g) for g, c in cores.items() if c >= 0.01), reverse=True)
    return ", ".join(f"{group} {value:.2f}" for value, group in busy) or "idle"
