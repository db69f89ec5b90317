"""Rewrite the generated configuration tables from the settings classes.

    .venv/bin/python scripts/sync_readme_config.py

README.md: the table of the default plugins (``config``) and of the opt-in built-in
plugins (``optional-config``); docs/cluster.md: each cluster plugin's own table.
tests/core/test_docs.py and tests/postgres/test_cluster_docs.py fail when a table and the
code disagree.
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
from plugins.postgres.settings import PostgresSettings  # noqa: E402
from plugins.ratelimit_redis.settings import RedisSettings  # noqa: E402

#: Built-in plugins that are not enabled by default, whose settings the README lists too.
OPT_IN = [PostgresSettings, RedisSettings]


def default_table() -> str:
    with tempfile.NamedTemporaryFile(suffix=".toml") as empty:
        config = load_config(
            empty.name, env_file=None, overrides={"core": {"plugins": list(DEFAULT_PLUGINS)}}
        )
    return markdown(config.plugin_settings)


def replace(path: Path, marker: str, table: str) -> None:
    text = path.read_text()
    pattern = rf"<!-- {marker}:start -->\n.*<!-- {marker}:end -->"
    if not re.search(pattern, text, flags=re.S):
        raise SystemExit(f"{path.name} lost its {marker} markers")
    block = f"<!-- {marker}:start -->\n{table}<!-- {marker}:end -->"
    path.write_text(re.sub(pattern, lambda _: block, text, flags=re.S))
    print(f"{path.name} [{marker}]: {table.count(chr(10)) - 2} settings")


def main() -> None:
    replace(ROOT / "README.md", "config", default_table())
    replace(ROOT / "README.md", "optional-config", markdown(OPT_IN))
    replace(ROOT / "docs" / "cluster.md", "postgres-config", markdown([PostgresSettings]))
    replace(ROOT / "docs" / "cluster.md", "redis-config", markdown([RedisSettings]))


if __name__ == "__main__":
    main()
