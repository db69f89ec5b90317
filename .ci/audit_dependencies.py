"""CI: pip-audit over requirements.lock (the locked runtime + dev dependency set).

Fails (exit 1) when a locked package has a known vulnerability. When the vulnerability
service (PyPI's JSON API) cannot be reached, it says so and exits 0: network trouble
alone must not fail a build, a found vulnerability must.

Where PyPI answers only the project-level JSON (``/pypi/<name>/json``) and not the
per-version one pip-audit asks for (some proxies), a package pip-audit had to skip is
still checked when the lock pins the latest release: that document lists the latest
release's known vulnerabilities. The rest is reported as not audited.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "audit.json"
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(LOCK),
            "--no-deps",  # every package is pinned in the lock already
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--timeout",
            "20",
            "--format",
            "json",
            "--output",
            str(report),
        ]
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        try:
            data = json.loads(report.read_text())
        except (OSError, ValueError):
            print("ci: pip-audit could not check the dependencies (no report); not failing:")
            print(run.stderr[-1500:])
            return 0
    dependencies = data.get("dependencies", [])
    vulnerable = [dep for dep in dependencies if dep.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"ci: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
    skipped = [dep["name"] for dep in dependencies if dep.get("skip_reason")]
    checked = len(dependencies) - len(skipped)
    not_audited = []
    for name in skipped:
        found = latest_release_vulns(name, pinned(name))
        if found is None:
            not_audited.append(name)
            continue
        checked += 1
        for vuln in found:
            vulnerable.append({"name": name})
            print(f"ci: {name} {pinned(name)}: {vuln.get('id')} (fixed in {vuln.get('fixed_in')})")
    print(
        f"ci: pip-audit checked {checked} of {len(dependencies)} locked packages: "
        f"{len(vulnerable)} vulnerable"
    )
    if not_audited:
        print(f"ci: not audited (no vulnerability data reachable): {', '.join(not_audited)}")
    return 1 if vulnerable else 0


def pinned(name: str) -> str:
    for line in LOCK.read_text().splitlines():
        package, _, version = line.partition("==")
        if package.strip().lower().replace("_", "-") == name.lower().replace("_", "-"):
            return version.strip()
    return ""


def latest_release_vulns(name: str, version: str) -> list[dict[str, Any]] | None:
    """The known vulnerabilities of ``name`` when ``version`` is its latest release, from
    PyPI's project-level JSON; ``None`` when that cannot tell (older pin, no network)."""
    try:
        url = f"https://pypi.org/pypi/{name}/json"
        with urllib.request.urlopen(url, timeout=20) as response:
            document = json.load(response)
    except (OSError, ValueError):
        return None
    if document.get("info", {}).get("version") != version:
        return None
    return list(document.get("vulnerabilities") or [])


if __name__ == "__main__":
    sys.exit(main())
