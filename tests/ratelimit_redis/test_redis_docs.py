"""docs/cluster.md's Redis settings table is what the ratelimit_redis plugin reads."""

import re
from pathlib import Path

from core.config.reference import markdown
from plugins.ratelimit_redis.settings import RedisSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "cluster.md"


def test_the_cluster_doc_lists_the_redis_settings_as_the_code_has_them():
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- redis-config:start -->\n(.*)<!-- redis-config:end -->", text, re.S)
    assert block, "docs/cluster.md lost its Redis settings markers"
    assert block.group(1) == markdown([RedisSettings])
