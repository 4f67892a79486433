"""Webhooks: a key registers a URL for the events it may see; the service posts them, signed, and retries.

- :mod:`~geo.webhooks.events`: the events, which roles may ask for which, and the signature;
- :mod:`~geo.webhooks.registry`: registering a webhook (its URL checked), listing, deleting, the delivery log;
- :mod:`~geo.webhooks.fanout`: the outbox (written by triggers, migration 0020, in each write's
  transaction) turned into deliveries, each redacted for its webhook's key;
- :mod:`~geo.webhooks.sender`: the background sender (claims, posts, records, retries).
"""

from geo.webhooks.events import (
    DELIVERY_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    EVENTS,
    ROLE_EVENTS,
    SIGNATURE_HEADER,
    signature,
    verify,
)
from geo.webhooks.fanout import JobDocuments, Subscriber, fan_out, payload_for
from geo.webhooks.registry import (
    DELIVERY_STATES,
    InvalidWebhook,
    NewWebhook,
    TooManyWebhooks,
    WebhookNotFound,
    check_subscriber,
    check_url,
    create_job_callbacks,
    create_webhook,
    delete_webhook,
    get_webhook,
    list_deliveries,
    list_webhooks,
)
from geo.webhooks.sender import Sender, next_attempt

__all__ = [
    "DELIVERY_HEADER",
    "DELIVERY_STATES",
    "EVENTS",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "ROLE_EVENTS",
    "SIGNATURE_HEADER",
    "InvalidWebhook",
    "JobDocuments",
    "NewWebhook",
    "Sender",
    "Subscriber",
    "TooManyWebhooks",
    "WebhookNotFound",
    "check_subscriber",
    "check_url",
    "create_job_callbacks",
    "create_webhook",
    "delete_webhook",
    "fan_out",
    "get_webhook",
    "list_deliveries",
    "list_webhooks",
    "next_attempt",
    "payload_for",
    "signature",
    "verify",
]
