"""Rewrite the README's configuration table from the settings classes.

    .venv/bin/python scripts/sync_readme_config.py

tests/core/test_docs.py fails when the table and the code disagree.
"""

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config.reference import markdown  # noqa: E402
from core.config.settings import DEFAULT_PLUGINS  # noqa: E402
from core.web.app import load_config  # noqa: E402


def main() -> None:
    with tempfile.NamedTemporaryFile(suffix=".toml") as empty:
        config = load_config(
            empty.name, env_file=None, overrides={"core": {"plugins": list(DEFAULT_PLUGINS)}}
        )
    table = markdown(config.plugin_settings)
    readme = ROOT / "README.md"
    text = re.sub(
        r"<!-- config:start -->\n.*<!-- config:end -->",
        lambda _: f"<!-- config:start -->\n{table}<!-- config:end -->",
        readme.read_text(),
        flags=re.S,
    )
    readme.write_text(text)
    print(f"README.md: {table.count(chr(10)) - 2} settings")


if __name__ == "__main__":
    main()
