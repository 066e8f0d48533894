"""The request filters `requests list` and `usage tail` share: names or ids in, checked ids out."""

from __future__ import annotations

from server.errors import INVALID_VALUE
from server.gateway import Gateway
from server.operations import find_key, find_project
from server.request_feed import Filters
from server.settlement import STATUSES

STATUS_FILTERS = (*STATUSES, "failed")  # "failed": any finished request that did not end ok


def request_filters(
    gw: Gateway, project: str | None, key: str | None, model: str | None, status: str | None
) -> Filters:
    """Filters for a project (name or id), a key (id or prefix), a public model and a status; an unknown
    project or key is a 404 and an unknown status a 400, never an empty answer that hides a typo."""
    if status is not None and status not in STATUS_FILTERS:
        raise INVALID_VALUE(field="status", what="one of " + ", ".join(STATUS_FILTERS))
    return Filters(
        project_id=find_project(gw, project).id if project else None,
        key_id=find_key(gw, key).id if key else None,
        model=model or None,
        status=status,
    )
