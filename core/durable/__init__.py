"""The durable room: everything behind "acknowledged = answered once".

The inbox/outbox queue in SQLite and its codec, the outbox delivery loop, the storage
failure watch, retention and group commit. A second backend (PostgreSQL) is a sibling
module of :mod:`core.durable.sqlite`. No aiohttp, nothing from ``core.web``.
"""
