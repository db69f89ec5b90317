"""What the deploy tests need from the machine: Debian's nginx, chromium, systemd-analyze.

A test needing one skips when it is missing, except in CI (``CI=true``), where it fails:
``.ci/run`` installs them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.testing import service_missing

NGINX = Path("/usr/sbin/nginx")
CHROMIUM = Path("/usr/bin/chromium")


def require(path: Path | None, what: str) -> Path:
    """``path`` when it exists; else skip (locally) or fail (CI) saying what to install."""
    if path is not None and path.exists():
        return path
    service_missing(f"needs {what}", ".ci/run should have installed it")


def systemd_analyze() -> Path:
    found = shutil.which("systemd-analyze")
    return require(Path(found) if found else None, "systemd-analyze (apt-get install systemd)")
