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


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``:
    all but idle and iowait), for how much of the machine a run used."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def memory_mb(pid: int) -> dict[str, float]:
    """``rss`` (now) and ``peak`` (high-water mark) resident memory of ``pid`` in MB."""
    figures = {"rss": 0.0, "peak": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            figures["rss"] = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            figures["peak"] = int(line.split()[1]) / 1024
    return figures


def with_children(pid: int) -> list[int]:
    """``pid`` and its direct children (``serve --workers N``: the supervisor and its
    workers), read from each process's ``/proc/<pid>/stat``."""
    found = [pid]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def database_backends(pids: list[int]) -> list[int]:
    """The PostgreSQL server processes serving TCP connections of ``pids`` (a gateway's
    pool): each backend's title names its client's address and port, e.g. ``postgres:
    postgres test 127.0.0.1(40772) idle``. Connections over a Unix socket are not found."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:  # closed meanwhile (the listing's own descriptor, for one)
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pids[0]}/net/{table}").read_text().splitlines()[1:]
        except (OSError, IndexError):
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and "(" in title:
            port = title.rsplit("(", 1)[1].split(")", 1)[0]
            if port.isdigit() and int(port) in ports:
                found.append(int(entry))
    return found
