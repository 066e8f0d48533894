"""GET /v1/models and /v1/models/{id}: OpenAI's list shape plus price card, capabilities, latency."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from server.api.common import admit, gateway_of, json_response, v1
from server.errors import MODEL_NOT_FOUND
from server.gateway import Gateway
from server.keys import bearer_token
from server.money import credits_number
from server.snapshot import ModelEntry

STARTED = 1_700_000_000


def describe(gw: Gateway, model: ModelEntry) -> dict[str, Any]:
    card = model.rates.card
    pricing: dict[str, Any] = {"unit": "credits per 1M tokens"}
    for name, micro in card.items():
        if name == "per_image":
            pricing[name] = {size: credits_number(amount) for size, amount in micro.items()}
        else:
            pricing[name] = credits_number(micro)
    return {
        "id": model.name,
        "object": "model",
        "created": STARTED,
        "owned_by": "gateway",
        "pricing": pricing,
        "capabilities": list(model.capabilities),
        "context_window": model.context_window,
        "latency": gw.latency.band(model.name),
    }


@get(v1("/models"))
async def list_models(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    admit(request, bearer_token(request.headers.get("authorization")))
    return json_response({"object": "list", "data": [describe(gw, m) for m in gw.snapshot.models.values()]})


@get(v1("/models/{model_id:path}"))
async def retrieve_model(request: Request[Any, Any, Any], model_id: str) -> Response[Any]:
    gw = gateway_of(request)
    admit(request, bearer_token(request.headers.get("authorization")))
    model = gw.snapshot.models.get(model_id.lstrip("/"))
    if model is None:
        raise MODEL_NOT_FOUND(model=model_id.lstrip("/"), param="model")
    return json_response(describe(gw, model))
