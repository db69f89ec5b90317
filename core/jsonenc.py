"""JSON text for responses and stored rows: orjson when it is installed, else the stdlib.

Both give the same compact UTF-8 text (no ASCII escapes) and refuse the same common
values: orjson is told not to turn datetimes and dataclasses into JSON by itself, so a
value that cannot be stored without orjson cannot be stored with it either. orjson
refuses a few values the stdlib takes (nesting past 255 levels, lone surrogates, ``str``
subclasses as keys); those fall back to the stdlib.
"""

from __future__ import annotations

import json
from typing import Any


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


try:  # optional accelerator
    import orjson

    _STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

    def dumps(value: Any) -> str:
        """``value`` as compact JSON text."""
        try:
            return orjson.dumps(value, option=_STRICT).decode()
        except TypeError:
            return _json_dumps(value)

except ImportError:  # pragma: no cover - depends on the environment
    dumps = _json_dumps
