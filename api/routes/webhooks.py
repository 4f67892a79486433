"""Webhooks: register a URL for events, list and delete them, read a webhook's delivery log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from api.deps import AppSettings, Caller, Conn
from api.schemas import IsoDatetime, problems
from geo import webhooks

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EventType = Literal[
    "wayleave.created", "wayleave.transitioned", "wayleave.edited",
    "upload.previewed", "upload.applied", "upload.rejected", "upload.failed",
    "report.done", "report.failed", "pipeline_import.done", "pipeline_import.failed",
]  # fmt: skip
WebhookId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The webhook's id")]


class WebhookRequest(BaseModel):
    """What to register: where to post and which events."""

    url: str = Field(
        max_length=webhooks.registry.MAX_URL,
        description="Where deliveries are posted: http(s), no credentials, no fragment; public addresses only "
        "unless the service allows private ones.",
        examples=["https://gis.example.org/hooks/connectivity"],
    )
    events: list[EventType] | None = Field(
        default=None,
        max_length=len(webhooks.EVENTS),
        description="The events to receive; omitted: every event the key's role may see.",
    )


class Webhook(BaseModel):
    """A registered webhook (never its secret)."""

    id: int = Field(description="The webhook's id")
    key_id: int = Field(description="The API key it belongs to (its deliveries are redacted for that key)")
    url: str = Field(description="Where deliveries are posted")
    events: list[EventType] = Field(description="The events it receives")
    active: bool = Field(description="False once deleted: nothing more is sent")
    created_at: IsoDatetime = Field(description="When it was registered")
    created_by: str = Field(description="Who registered it")
    deleted_at: IsoDatetime | None = Field(description="When it was deleted; null while active")


class NewWebhook(Webhook):
    """A webhook just registered, with its secret: shown this once, never again."""

    secret: str = Field(
        description="The key of the HMAC-SHA256 in X-Connectivity-Signature; keep it, it is not shown again"
    )


class Attempt(BaseModel):
    """One attempt of a delivery."""

    attempt: int = Field(description="1 for the first attempt")
    at: str = Field(description="When it was made (ISO 8601)")
    status_code: int | None = Field(description="The answer's HTTP status; null without an answer")
    error: str | None = Field(description="Why it did not deliver; null when it did")
    duration_ms: int = Field(description="How long it took, in milliseconds")


class Delivery(BaseModel):
    """One event sent (or to be sent) to the webhook."""

    id: int = Field(description="The delivery's id (the X-Connectivity-Delivery header)")
    event_id: str = Field(description="The event's id (X-Connectivity-Event-Id; the payload's id)")
    event_type: EventType = Field(description="The event (X-Connectivity-Event)")
    state: Literal["pending", "delivered", "failed", "cancelled"] = Field(
        description="pending (to be tried, or retried), delivered (a 2xx answer), failed (retried for the "
        "longest time allowed), cancelled (the webhook was deleted or its key revoked)"
    )
    attempts: int = Field(description="Attempts made")
    created_at: IsoDatetime = Field(description="When the delivery was made from its event")
    next_attempt_at: IsoDatetime | None = Field(description="When it is tried next; null unless pending")
    last_attempt_at: IsoDatetime | None = Field(description="When it was last tried")
    last_status_code: int | None = Field(description="The last answer's HTTP status")
    last_error: str | None = Field(description="Why the last attempt did not deliver")
    delivered_at: IsoDatetime | None = Field(description="When a 2xx answer came")
    payload: dict[str, Any] = Field(description="The JSON posted (as this key may see it)")
    attempt_log: list[Attempt] = Field(description="Every attempt, oldest first")


class DeliveryPage(BaseModel):
    """A page of the delivery log, newest first."""

    count: int = Field(description="Deliveries on this page")
    next_before: int | None = Field(description="The ``before`` of the next (older) page; null on the last")
    deliveries: list[Delivery] = Field(description="The deliveries, newest first")


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "events": list(row["events"])}


@router.post(
    "",
    summary="Register a webhook",
    status_code=201,
    response_model=NewWebhook,
    responses=problems(
        (400, "The URL cannot be used: `errors[].where` is body.url."), 401,
        (403, "The key's role cannot see objects of an event asked for."), (409, "The key has as many webhooks as it may."), 422,
    ),
)  # fmt: skip
async def create_webhook(
    conn: Conn, caller: Caller, settings: AppSettings, body: WebhookRequest, response: Response
) -> dict[str, Any]:
    """Any key may register a URL for the events of objects it may read.

    Each event is posted as JSON with ``X-Connectivity-Signature: t=<unix time>,v1=<hex HMAC-SHA256
    of "<t>.<body>" keyed by the secret>`` (the secret is in this answer only), and
    ``X-Connectivity-Event-Id``, ``X-Connectivity-Event`` and ``X-Connectivity-Delivery``. The payload
    carries only what this key may see through the API. A non-2xx answer is retried with an
    exponential backoff for up to a day; redirects are not followed.
    """
    new = await webhooks.create_webhook(conn, caller, body.url, body.events, settings=settings.webhook)
    response.headers["Location"] = f"/webhooks/{new.record['id']}"
    response.headers["Cache-Control"] = "no-store"
    return {**_shown(new.record), "secret": new.secret}


@router.get("", summary="Webhooks", response_model=list[Webhook], responses=problems(401))
async def list_webhooks(
    conn: Conn,
    caller: Caller,
    deleted: Annotated[bool, Query(description="Include deleted webhooks")] = False,
) -> list[dict[str, Any]]:
    """The key's own webhooks, oldest first; admins see every key's."""
    return [_shown(r) for r in await webhooks.list_webhooks(conn, caller, deleted=deleted)]


@router.get("/{webhook_id}", summary="One webhook", response_model=Webhook, responses=problems(400, 401, 404))
async def get_webhook(conn: Conn, caller: Caller, webhook_id: WebhookId) -> dict[str, Any]:
    """A webhook of the key's own (admins: any), deleted ones too."""
    return _shown(await webhooks.get_webhook(conn, webhook_id, caller))


@router.delete(
    "/{webhook_id}", summary="Delete a webhook", status_code=204, responses=problems(400, 401, 404)
)
async def delete_webhook(conn: Conn, caller: Caller, webhook_id: WebhookId) -> Response:
    """Nothing more is sent to it: its pending deliveries are cancelled. Its delivery log stays readable."""
    await webhooks.delete_webhook(conn, webhook_id, caller)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    summary="A webhook's delivery log",
    response_model=DeliveryPage,
    responses=problems(400, 401, 404),
)
async def deliveries(
    conn: Conn,
    caller: Caller,
    webhook_id: WebhookId,
    response: Response,
    state: Annotated[
        Literal["pending", "delivered", "failed", "cancelled"] | None, Query(description="Only this state")
    ] = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Cursor: deliveries older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Every delivery, newest first, with each attempt's answer or error; follow ``next_before`` for older ones."""
    rows, next_before = await webhooks.list_deliveries(
        conn, webhook_id, caller, state=state, before=before, limit=limit
    )
    for row in rows:
        row["event_id"] = str(row["event_id"])
        if row["state"] != "pending":
            row["next_attempt_at"] = None
    response.headers["Cache-Control"] = "no-store"
    return {"count": len(rows), "next_before": next_before, "deliveries": rows}
