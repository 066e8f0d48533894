"""POST /v1/embeddings against OpenAI's schema, as floats and as base64, from every provider that embeds."""

from __future__ import annotations

import pytest

from tests.conformance.cases import EMBEDDING_KINDS, embeddings_body
from tests.conformance.client import ConformanceClient

ENCODED_AS = {"float": list, "base64": str}


@pytest.mark.parametrize("encoding_format", ENCODED_AS)
@pytest.mark.parametrize("kind", EMBEDDING_KINDS)
def test_an_embeddings_answer_conforms(api: ConformanceClient, kind: str, encoding_format: str) -> None:
    answer = api.json("POST", "/embeddings", embeddings_body(kind, encoding_format))
    assert [item["index"] for item in answer["data"]] == [0, 1]
    assert all(isinstance(item["embedding"], ENCODED_AS[encoding_format]) for item in answer["data"])
    assert answer["usage"]["cost"] > 0
