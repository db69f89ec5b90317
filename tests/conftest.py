"""Shared fixtures: the plugin kit (``eneca_app``, ``ScriptedAgent``...) is the same one
third-party plugin authors use."""

# plugins.postgres.testing: the per-test PostgreSQL schema fixtures (skip without a server,
# fail without one under CI=true).
# tests.support.fixtures: the fake model and fake TalkMe API that serve-process tests use.
pytest_plugins = ["core.testing", "plugins.postgres.testing", "tests.support.fixtures"]
