"""plugins/talkme/README.md says what the channel really does: its sample webhook is
accepted with the answer it shows, the calls it lists are the calls the bot makes, with
the bodies it shows, and every setting it names exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.config.reference import keys
from core.testing import ScriptedAgent
from plugins.talkme.settings import TalkMeSettings

README = Path(__file__).resolve().parents[2] / "plugins" / "talkme" / "README.md"
SECRET = "readme-secret-0123456789"


def _text() -> str:
    return README.read_text(encoding="utf-8")


def _json_blocks() -> list[object]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", _text(), re.S)]


def _documented_calls() -> dict[str, dict]:
    rows = re.findall(r"^\| `(customBot/\w+)` \| `(\{.*?\})` \|", _text(), re.M)
    return {method: json.loads(body) for method, body in rows}


async def test_the_sample_webhook_is_accepted_with_the_answer_shown(talkme_app, fake_talkme):
    sample, answer = _json_blocks()
    client = await talkme_app(ScriptedAgent("ok"), talkme={"webhook_secret": SECRET})
    response = await client.post(f"/webhook/talkme/{SECRET}", json=sample)
    assert response.status == 200
    assert await response.json() == answer
    refused = await client.post("/webhook/talkme", json=sample)
    assert refused.status == 403


async def test_the_calls_listed_are_the_calls_a_hand_over_makes(talkme_app, fake_talkme):
    documented = _documented_calls()
    sample, _ = _json_blocks()
    agent = ScriptedAgent("Yes, from 10 to 18...", actions=("handover",))
    client = await talkme_app(agent, talkme={"typing_ttl_s": 15})
    assert (await client.post("/webhook/talkme", json=sample)).status == 200
    await fake_talkme.wait_until(lambda: bool(fake_talkme.calls_to("finish")))
    made = {f"customBot/{call.method}": call for call in fake_talkme.calls}
    assert set(made) == set(documented)
    for method, body in documented.items():
        assert made[method].body == body, method
        assert made[method].headers["X-Token"] == sample["token"]  # the webhook's token


def test_every_setting_named_is_a_real_one():
    real = {key.env for key in keys([TalkMeSettings])}
    named = set(re.findall(r"\bTALKME_[A-Z_]+\b", _text()))
    assert named and named <= real, named - real
