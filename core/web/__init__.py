"""The web room: the aiohttp application, the gateway's own routes, JSON errors and
request ids, the one map from domain errors to HTTP, auth, client addresses, the OpenAPI
generator and Prometheus metrics."""
