"""GET /v1/models and /v1/models/{id}: OpenAI's list shape plus price card, capabilities, latency."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from server.api.common import client_ip, gateway_of, json_response, v1
from server.errors import model_not_found
from server.gateway import Gateway
from server.keys import bearer_token
from server.money import credits_number
from server.pipeline import admit
from server.snapshot import ModelEntry

STARTED = 1_700_000_000


def describe(gw: Gateway, model: ModelEntry) -> dict[str, Any]:
    rates = model.rates
    return {
        "id": model.name,
        "object": "model",
        "created": STARTED,
        "owned_by": "gateway",
        "pricing": {
            "unit": "credits per 1M tokens",
            "input": credits_number(rates.input),
            "output": credits_number(rates.output),
            "cached_input": credits_number(rates.cached_input),
        },
        "capabilities": list(model.capabilities),
        "context_window": model.context_window,
        "latency": gw.latency.band(model.name),
    }


@get(v1("/models"))
async def list_models(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    admit(gw, bearer_token(request.headers.get("authorization")), client_ip(request))
    return json_response({"object": "list", "data": [describe(gw, m) for m in gw.snapshot.models.values()]})


@get(v1("/models/{model_id:path}"))
async def retrieve_model(request: Request[Any, Any, Any], model_id: str) -> Response[Any]:
    gw = gateway_of(request)
    admit(gw, bearer_token(request.headers.get("authorization")), client_ip(request))
    model = gw.snapshot.models.get(model_id.lstrip("/"))
    if model is None:
        raise model_not_found(model_id.lstrip("/"))
    return json_response(describe(gw, model))
