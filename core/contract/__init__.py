"""The contract room: the values and interfaces plugins exchange with the gateway.

Events, the agent and its tools, the conversation store, delivery results, health checks,
knowledge passages and the domain errors. Standard library (and pydantic) only: nothing
here imports aiohttp or another room of ``core``.
"""
