"""Shared fixtures: the plugin kit (``eneca_app``, ``ScriptedAgent``...) is the same one
third-party plugin authors use."""

pytest_plugins = ["core.testing"]
