"""The built-in plugins. Each is registered through the ``eneca_bot.plugins`` entry point
group, exactly like a third-party plugin."""
