"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, Ollama, vLLM).

A plain aiohttp POST: the chat client is not needed to index documents, and ``eneca-bot
kb reindex`` must not import the openai SDK. Vectors come back L2-normalised as float32,
so a dot product is the cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import numpy as np

BATCH = 64


class EmbeddingsUnavailable(Exception):
    """The embeddings server could not be reached or answered something unusable."""


class Embedder:
    """Turns texts into unit vectors with one model."""

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 30.0
    ) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text; :class:`EmbeddingsUnavailable` on any failure."""
        rows = [await self._batch(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        matrix = np.vstack(rows).astype(np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1, norms)

    async def _batch(self, texts: Sequence[str]) -> np.ndarray:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {"model": self.model, "input": list(texts)}
        try:
            async with self._session.post(self.url, json=body, headers=self._headers) as response:
                if response.status != 200:
                    raise EmbeddingsUnavailable(f"{self.url} answered HTTP {response.status}")
                data = await response.json(content_type=None)
            items = sorted(data["data"], key=lambda item: item.get("index", 0))
            vectors = [item["embedding"] for item in items]
        except EmbeddingsUnavailable:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EmbeddingsUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingsUnavailable(f"{self.url} sent a malformed response") from exc
        if len(vectors) != len(texts) or len({len(v) for v in vectors}) != 1:
            raise EmbeddingsUnavailable(f"{self.url} sent {len(vectors)} vectors for {len(texts)}")
        return np.asarray(vectors, dtype=np.float32)
