"""gatewayctl webhooks create|list|delete|enable|test|deliveries|redeliver

Endpoints have no names, so their ids (we_…) and the deliveries' ids (whd_…) are always shown. A new
endpoint's signing secret is printed once, at creation.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

import typer

from gatewayctl import humanize
from gatewayctl.errors import CliError
from gatewayctl.options import Json, OptionalProject, Project, Token, Url, admin, group
from gatewayctl.output import emit_json, fields, note, say, table
from gatewayctl.table import Column

app = group("Signed webhook endpoints and their deliveries.")

EndpointId = Annotated[str, typer.Argument(metavar="ENDPOINT_ID", help="Webhook endpoint id (we_…).")]
DeliveryId = Annotated[
    str, typer.Argument(metavar="DELIVERY_ID", help="Delivery id (whd_…), as `webhooks deliveries` lists them.")
]
TEST_WAIT_S = 15.0


class Status(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    cancelled = "cancelled"


def _status(endpoint: dict[str, Any]) -> str:
    if endpoint["status"] == "disabled" and endpoint.get("disabled_reason"):
        return f"disabled: {endpoint['disabled_reason']}"
    if endpoint.get("failing_since_ms"):
        return f"failing since {humanize.relative(endpoint['failing_since_ms'])}"
    return str(endpoint["status"])


def _outcome(delivery: dict[str, Any]) -> str:
    """What the last attempt got: its status code, else its error; nothing before the first attempt."""
    if delivery.get("last_status_code"):
        return str(delivery["last_status_code"])
    return str(delivery.get("last_error") or "")


def _show_endpoint(endpoint: dict[str, Any]) -> None:
    pairs: list[tuple[str, str | list[str]]] = [
        ("id", endpoint["id"]),
        ("project", f"{endpoint.get('project_name') or '?'} ({endpoint['project_id']})"),
        ("url", endpoint["url"]),
        ("events", list(endpoint["events"])),
        ("status", _status(endpoint)),
    ]
    if endpoint.get("description"):
        pairs.append(("description", endpoint["description"]))
    if endpoint.get("secret"):
        pairs.append(("secret", endpoint["secret"]))
    fields(pairs)


@app.command("create")
def create(
    endpoint_url: Annotated[
        str, typer.Argument(metavar="URL", help="Where to POST events: an https URL of a public address.")
    ],
    project: Project,
    events: Annotated[
        list[str],
        typer.Option("--events", help="Event types (repeat or comma), e.g. wallet.recharged,usage.threshold_reached."),
    ],
    description: Annotated[str | None, typer.Option("--description", help="A note for people.")] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Register a webhook endpoint for a project.

    Prints its id and signing secret (whsec_…), shown only now: receivers verify deliveries with it.
    """
    wanted = [part.strip() for value in events for part in value.split(",") if part.strip()]
    body = {"project": project, "url": endpoint_url, "events": wanted, "description": description}
    endpoint = admin(url, token).post("/webhooks/endpoints", body)
    if json_out:
        emit_json(endpoint)
        return
    _show_endpoint(endpoint)
    note("store the secret now: it cannot be shown again")


@app.command("list")
def list_(project: OptionalProject = None, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """List webhook endpoints.

    With their project, URL, events and status (disabled ones say why).
    """
    data = admin(url, token).get("/webhooks/endpoints", project=project)["data"]
    if json_out:
        emit_json(data)
        return
    rows = [
        {
            "id": e["id"],
            "project": e.get("project_name") or e["project_id"],
            "status": _status(e),
            "url": e["url"],
            "events": ", ".join(e["events"]),
        }
        for e in data
    ]
    columns = [
        Column("id", "ID"),
        Column("project", "PROJECT"),
        Column("status", "STATUS", elide=True),
        Column("url", "URL", elide=True),
        Column("events", "EVENTS", elide=True),
    ]
    table(columns, rows, empty="no webhook endpoints: gatewayctl webhooks create URL --project P --events E")


@app.command("delete")
def delete(endpoint_id: EndpointId, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Delete an endpoint; its pending deliveries are cancelled."""
    answer = admin(url, token).request("DELETE", f"/webhooks/endpoints/{endpoint_id}")
    if json_out:
        emit_json(answer)
    else:
        say(f"deleted webhook endpoint {answer['id']}")


@app.command("enable")
def enable(endpoint_id: EndpointId, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Enable a disabled endpoint again.

    New events are delivered; failed deliveries only when redelivered.
    """
    endpoint = admin(url, token).post(f"/webhooks/endpoints/{endpoint_id}/enable")
    if json_out:
        emit_json(endpoint)
    else:
        say(f"enabled webhook endpoint {endpoint['id']} ({endpoint['url']})")


def _wait_for_attempt(client: Any, delivery: dict[str, Any], wait_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while not delivery.get("attempt_log") and time.monotonic() < deadline:
        time.sleep(0.2)
        delivery = client.get(f"/webhooks/deliveries/{delivery['id']}")
    return delivery


@app.command("test")
def test(
    endpoint_id: EndpointId,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for the first attempt.")] = TEST_WAIT_S,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Send a signed webhook.test event to an endpoint.

    Waits for the first attempt and shows its answer; exits 1 if it failed.
    """
    client = admin(url, token)
    delivery = _wait_for_attempt(client, client.post(f"/webhooks/endpoints/{endpoint_id}/test"), wait)
    attempts = delivery.get("attempt_log") or []
    if json_out:
        emit_json(delivery)
    elif attempts:
        first = attempts[0]
        what = str(first.get("response_code") or first.get("error"))
        verdict = "delivered" if first["ok"] else "failed"
        say(f"{verdict}: {what} in {first['latency_ms']} ms (delivery {delivery['id']}, event {delivery['event_id']})")
    if not attempts:
        raise CliError(f"no attempt within {wait:g} s; see gatewayctl webhooks deliveries --endpoint {endpoint_id}")
    if not attempts[0]["ok"]:
        raise CliError(f"the test delivery failed: {attempts[0].get('response_code') or attempts[0].get('error')}")


@app.command("deliveries")
def deliveries(
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Only this endpoint's (we_…).")] = None,
    status: Annotated[Status | None, typer.Option("--status", help="pending, delivered, failed or cancelled.")] = None,
    project: OptionalProject = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Most deliveries shown.")] = 50,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List webhook deliveries, newest event first.

    Each with its event, endpoint, status, attempts and the last answer (code or error).
    """
    params = {"endpoint": endpoint, "status": status.value if status else None, "project": project, "limit": limit}
    data = admin(url, token).get("/webhooks/deliveries", **params)["data"]
    if json_out:
        emit_json(data)
        return
    now = humanize.now_ms()
    rows = [
        {
            "id": d["id"],
            "event": d["event_type"],
            "endpoint": d["endpoint_id"],
            "status": d["status"],
            "attempts": str(d["attempts"]),
            "when": humanize.relative(d["event_ms"], now),
            "last": _outcome(d),
        }
        for d in data
    ]
    columns = [
        Column("id", "ID"),
        Column("event", "EVENT"),
        Column("endpoint", "ENDPOINT"),
        Column("status", "STATUS"),
        Column("attempts", "TRIES", align="right"),
        Column("when", "EVENT TIME", elide=True),
        Column("last", "LAST ANSWER", elide=True),
    ]
    table(columns, rows, empty="no deliveries")


@app.command("redeliver")
def redeliver(delivery_id: DeliveryId, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Send a delivery again (same event id), ahead of newer events for its endpoint."""
    delivery = admin(url, token).post(f"/webhooks/deliveries/{delivery_id}/redeliver")
    if json_out:
        emit_json(delivery)
    else:
        say(f"queued {delivery['id']} ({delivery['event_type']}, event {delivery['event_id']}) again")
