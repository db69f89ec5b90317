"""Health checks that plugins report through the ``health_check`` hook."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Check:
    """One component's state. ``ok=False`` makes ``/health`` answer 503 ``degraded``."""

    name: str
    ok: bool
    detail: Mapping[str, Any] = field(default_factory=dict)
