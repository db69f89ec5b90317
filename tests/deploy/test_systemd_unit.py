"""deploy/systemd/eneca-bot.service passes ``systemd-analyze verify`` (Debian's systemd) and
says what the issue asks of it."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

from core.config.settings import CoreSettings
from tests.deploy.tools import systemd_analyze

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "eneca-bot.service"
SHIPPED_EXEC = "/opt/eneca-bot/.venv/bin/eneca-bot"


def options() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        match = re.match(r"^(\w+)=(.*)$", line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2))
    return found


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(systemd_analyze()), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


def test_the_unit_verifies_with_only_the_build_machine_missing_the_install(tmp_path) -> None:
    shipped = verify(UNIT)
    complaints = [line for line in shipped.stderr.splitlines() if line.strip()]
    # The only thing systemd-analyze can object to here is that /opt/eneca-bot is not
    # installed on the machine running the tests.
    assert all(f"{SHIPPED_EXEC} is not executable" in line for line in complaints), complaints

    # With the command pointing at a real eneca-bot, nothing at all is reported.
    script = Path(sys.executable).with_name("eneca-bot")
    unit = tmp_path / "eneca-bot.service"
    unit.write_text(UNIT.read_text().replace(SHIPPED_EXEC, str(script)))
    result = verify(unit)
    assert (result.returncode, result.stderr.strip()) == (0, "")


def test_the_hardening_scores_as_systemd_rates_a_well_confined_service(tmp_path) -> None:
    unit = tmp_path / "eneca-bot.service"
    unit.write_text(UNIT.read_text())
    result = subprocess.run(
        [str(systemd_analyze()), "security", "--offline=true", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    overall = [line for line in result.stdout.splitlines() if "Overall exposure" in line]
    assert result.returncode == 0, overall or result.stderr


def test_the_unit_runs_the_gateway_the_way_the_issue_asks() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"].endswith("eneca-bot serve")
    assert service["User"] != "root"
    assert service["EnvironmentFile"] == "/etc/eneca-bot/env"
    assert service["StateDirectory"] == service["LogsDirectory"] == "eneca-bot"
    assert service["Restart"] == "on-failure"
    for hardening in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert service[hardening] == "true", hardening
    assert service["ProtectSystem"] == "strict"
    # A graceful stop finishes in-flight replies within SHUTDOWN_GRACE_S before systemd
    # would send SIGKILL.
    stop_s = float(service["TimeoutStopSec"].removesuffix("s"))
    assert stop_s > CoreSettings.model_fields["shutdown_grace_s"].default + 10
    assert "DATA_DIR" not in UNIT.read_text().split("[Service]")[1]  # StateDirectory decides
    assert options()["KillSignal"] == ["SIGTERM"]
