"""Makes a tiny third-party plugin distribution that importlib.metadata really discovers."""

from pathlib import Path

PLUGIN_SOURCE = '''
from aiohttp import web
from core import hookimpl


class HelloPlugin:
    """A third-party plugin: one route, one observer."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def register_routes(self, gateway):
        async def hello(request):
            return web.json_response({"hello": "from a third party"})
        return [web.get("/hello", hello)]

    @hookimpl
    def message_received(self, message):
        self.seen.append(message.text)
'''

BROKEN_SOURCE = "raise ImportError('this plugin is broken on purpose')\n"


def make_distribution(site: Path, name: str = "hello", source: str = PLUGIN_SOURCE) -> Path:
    """Write ``<name>_plugin.py`` and its ``.dist-info`` with an ``eneca_bot.plugins``
    entry point into ``site`` (a folder to put on ``sys.path``)."""
    site.mkdir(parents=True, exist_ok=True)
    module = f"{name}_plugin"
    (site / f"{module}.py").write_text(source)
    info = site / f"eneca_{name}-1.2.3.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: eneca-{name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(
        f"[eneca_bot.plugins]\n{name} = {module}:{name.capitalize()}Plugin\n"
    )
    return site
