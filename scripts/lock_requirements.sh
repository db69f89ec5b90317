#!/usr/bin/env bash
# Regenerate requirements.lock: the exact versions a clean install of eneca-bot[dev,fast]
# resolves to today (runtime, dev tools and the optional accelerators). CI audits this
# file with pip-audit (.ci/audit_dependencies.py); re-run after changing dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -e ".[dev,fast]"
{
    echo "# Every package a clean 'pip install -e .[dev,fast]' installed (Linux, CPython"
    echo "# $("$work/venv/bin/python" -c 'import platform; print(platform.python_version())')). Regenerate with scripts/lock_requirements.sh;"
    echo "# CI runs pip-audit over it (.ci/audit_dependencies.py)."
    "$work/venv/bin/pip" freeze --exclude-editable --disable-pip-version-check | grep -v '^#'
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
