"""The engine room: the bus, the pipeline that answers one message, the in-process
memory fallback and rate limiting. No aiohttp, nothing from ``core.web``."""
