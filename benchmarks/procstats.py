"""CPU and memory of another process, read from ``/proc`` (Linux), no dependency.

``cpu_seconds`` counts every thread the process ever ran (``utime + stime`` in clock
ticks, 10 ms); ``cpu_ns`` sums the live threads' ``schedstat`` in nanoseconds, precise
enough to cost a handful of requests (threads that exited are not counted).
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all threads, finished ones included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_ns(pid: int) -> int:
    """CPU time of ``pid``'s live threads in nanoseconds (0 when schedstat is missing)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def memory_mb(pid: int) -> dict[str, float]:
    """``rss`` (now) and ``peak`` (high-water mark) resident memory of ``pid`` in MB."""
    figures = {"rss": 0.0, "peak": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            figures["rss"] = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            figures["peak"] = int(line.split()[1]) / 1024
    return figures
