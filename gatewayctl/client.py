"""The admin API client: one httpx call per command, errors turned into one-line CliErrors."""

from __future__ import annotations

from typing import Any

import httpx

from gatewayctl.errors import CliError


class AdminClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=f"{url}/admin/v1", headers={"authorization": f"Bearer {token}"}, timeout=timeout
        )
        self._url = url

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {self._url}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise CliError(_error_line(response))
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {})


def _error_line(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error.get('code') or error.get('type')}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:200]}"
