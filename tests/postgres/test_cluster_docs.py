"""docs/cluster.md's settings table is what the postgres plugin reads."""

import re
from pathlib import Path

from core.config.reference import markdown
from plugins.postgres.settings import PostgresSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "cluster.md"


def test_the_cluster_doc_lists_the_postgres_settings_as_the_code_has_them():
    text = DOC.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- postgres-config:start -->\n(.*)<!-- postgres-config:end -->", text, re.S
    )
    assert block, "docs/cluster.md lost its settings markers"
    assert block.group(1) == markdown([PostgresSettings])
