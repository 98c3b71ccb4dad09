"""Notifiers: webhook (signed), Slack-compatible webhook, e-mail, stdout; the dispatcher."""

from auditkeep.alerts.notify.base import (
    DeadLetter,
    DeadLetterStore,
    DeliveryError,
    InMemoryDeadLetters,
    Notifier,
    RetryPolicy,
    deliver,
    render_text,
)
from auditkeep.alerts.notify.dispatcher import Dispatcher
from auditkeep.alerts.notify.email import EmailNotifier
from auditkeep.alerts.notify.slack import SlackNotifier, slack_payload
from auditkeep.alerts.notify.stdout import StdoutNotifier
from auditkeep.alerts.notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookNotifier,
    sign,
    verify_signature,
)

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeadLetter",
    "DeadLetterStore",
    "DeliveryError",
    "Dispatcher",
    "EmailNotifier",
    "InMemoryDeadLetters",
    "Notifier",
    "RetryPolicy",
    "SlackNotifier",
    "StdoutNotifier",
    "WebhookNotifier",
    "deliver",
    "render_text",
    "sign",
    "slack_payload",
    "verify_signature",
]
