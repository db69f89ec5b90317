"""Settings of the memory_sqlite plugin: TOML section ``[memory_sqlite]``, env ``MEMORY_*``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core import PluginSettings

DEFAULT_FILE_NAME = "checkpoints.db"


class MemorySettings(PluginSettings):
    """Where conversations are kept and how much of them the agent sees."""

    section: ClassVar[str] = "memory_sqlite"
    model_config = SettingsConfigDict(env_prefix="MEMORY_", extra="ignore", case_sensitive=False)

    #: The database file (``MEMORY_SQLITE_PATH``); default ``DATA_DIR/checkpoints.db``.
    sqlite_path: Path | None = None
    #: Turns handed to the agent: the most recent window of each conversation.
    max_messages: int = Field(40, ge=1)
    #: Optional budget of characters for that window (the newest turn is always kept).
    max_chars: int | None = Field(None, ge=1)
    #: Conversations idle longer than this are purged; ``None`` or 0 keeps them forever.
    ttl_days: float | None = Field(None, ge=0)
    #: How often the purge runs when ``ttl_days`` is set.
    purge_interval_s: float = Field(3600.0, gt=0)
    #: Check the whole file for damage at start-up (``PRAGMA quick_check``); turn off only
    #: when a very large file makes start-up too slow.
    check_on_start: bool = True
    #: How long a write waits for a lock held by another process before failing.
    busy_timeout_ms: int = Field(5000, ge=0)

    def database_path(self, data_dir: Path) -> Path:
        """The file to open: ``sqlite_path`` if set, else ``data_dir/checkpoints.db``."""
        return self.sqlite_path if self.sqlite_path is not None else data_dir / DEFAULT_FILE_NAME

    @property
    def ttl_seconds(self) -> float | None:
        """Idle time after which a conversation is purged, or ``None`` when retention is off."""
        return self.ttl_days * 86_400 if self.ttl_days else None
