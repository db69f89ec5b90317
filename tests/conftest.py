"""Shared fixtures: the plugin kit (``eneca_app``, ``ScriptedAgent``...) is the same one
third-party plugin authors use."""

# plugins.postgres.testing: the per-test PostgreSQL schema fixtures (skip without a server,
# fail without one under CI=true).
pytest_plugins = ["core.testing", "plugins.postgres.testing"]
