"""The n8n example workflow (examples/n8n/workflow.json), run as n8n would run its HTTP node.

n8n is not installed here, so the test does what its HTTP Request node does with the
node's parameters: evaluates the ``={{ ... }}`` expressions (JavaScript, with node), adds
the Header Auth credential, and posts to the real gateway, then re-sends the same request
as "Retry On Fail" does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.testing import ScriptedAgent

WORKFLOW = Path(__file__).parents[2] / "examples" / "n8n" / "workflow.json"
NODE = shutil.which("node")

# Evaluates an n8n expression ("=text {{ js }} text") with the given $-variables.
EVALUATE_JS = r"""
const [template, scope] = [process.argv[1], JSON.parse(process.argv[2])];
const names = Object.keys(scope);
const run = (code) => new Function(...names, `return (${code});`)(...names.map((n) => scope[n]));
const out = template.slice(1).replace(/\{\{([\s\S]+?)\}\}(?!\})/g, (_, code) => {
  const value = run(code);
  return typeof value === "string" ? value : JSON.stringify(value);
});
process.stdout.write(out);
"""


def evaluate(expression: str, scope: dict[str, Any]) -> str:
    """An n8n parameter value: an expression when it starts with ``=``, else literal text."""
    if not expression.startswith("="):
        return expression
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", EVALUATE_JS, expression, json.dumps(scope)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def http_node(workflow: dict[str, Any]) -> dict[str, Any]:
    (node,) = [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.httpRequest"]
    return node


def test_the_trigger_feeds_the_http_node_with_header_auth_and_retries() -> None:
    workflow = json.loads(WORKFLOW.read_text())
    node = http_node(workflow)
    (trigger,) = [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.manualTrigger"]
    assert workflow["connections"][trigger["name"]]["main"][0][0]["node"] == node["name"]
    params = node["parameters"]
    assert params["method"] == "POST"
    assert params["genericAuthType"] == "httpHeaderAuth"
    assert "httpHeaderAuth" in node["credentials"]
    assert node["retryOnFail"] is True
    assert node["maxTries"] >= 2
    assert [h["name"] for h in params["headerParameters"]["parameters"]] == ["Idempotency-Key"]


@pytest.mark.skipif(NODE is None, reason="needs node to evaluate n8n's JavaScript expressions")
async def test_the_http_node_gets_one_answer_across_retries(eneca_app: Any) -> None:
    agent = ScriptedAgent(lambda request: f"bot says hi to {request.message.text!r}")
    client = await eneca_app(
        plugins=["http_api"], agent=agent, settings={"core": {"api_keys": "n8n-key"}}
    )
    params = http_node(json.loads(WORKFLOW.read_text()))["parameters"]
    scope = {
        "$env": {"ENECA_URL": str(client.make_url("/"))},  # with a trailing slash
        "$json": {"message": "What is eneca-bot?"},  # the item the trigger passes on
        "$execution": {"id": "4711"},
        "$itemIndex": 0,
    }
    url = evaluate(params["url"], scope)
    headers = {
        h["name"]: evaluate(h["value"], scope) for h in params["headerParameters"]["parameters"]
    }
    body = json.loads(evaluate(params["jsonBody"], scope))

    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=headers) as unauthenticated:
            assert unauthenticated.status == 401
        headers["X-API-Key"] = "n8n-key"  # what the Header Auth credential adds
        answers = []
        for _ in range(2):  # the first try, then "Retry On Fail" re-sending the same request
            async with session.post(url, json=body, headers=headers) as response:
                assert response.status == 200
                answers.append(await response.json())

    assert answers[0] == answers[1]
    assert answers[0]["response"] == "bot says hi to 'What is eneca-bot?'"
    assert answers[0]["success"] is True
    assert answers[0]["thread_id"] == "n8n-demo"
    assert len(agent.requests) == 1
