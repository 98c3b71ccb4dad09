"""Slack-compatible incoming webhooks (also Mattermost and Rocket.Chat): ``text`` for
clients that show only that, and blocks with the explanation and the key fields."""

from __future__ import annotations

from typing import Any

from auditkeep.alerts.fields import render_value
from auditkeep.alerts.model import Alert
from auditkeep.alerts.notify.webhook import WebhookNotifier

_ICON = {"critical": ":rotating_light:", "high": ":red_circle:", "medium": ":large_orange_circle:", "low": ":large_yellow_circle:", "info": ":information_source:"}


def slack_payload(alert: Alert) -> dict[str, Any]:
    icon = _ICON.get(alert.severity, "")
    text = f"{icon} [{alert.severity.upper()}] {alert.title}: {alert.explanation}".strip()
    facts = [f"*tenant:* {alert.tenant}", f"*rule:* {alert.rule_name}"]
    if alert.group_key:
        facts.append(f"*group:* {alert.group_key}")
    facts.append(f"*events:* {alert.count}")
    for k, v in list(alert.fields.items())[:6]:
        facts.append(f"*{k}:* {render_value(v, 80)}")
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"{alert.severity.upper()}: {alert.title}"[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.explanation[:2900]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts[:10]]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{alert.id}` · log index {alert.first_index}..{alert.last_index}"}]},
        ],
    }


class SlackNotifier(WebhookNotifier):
    """Posts to an incoming-webhook URL (no signature: the URL is the secret)."""

    def __init__(self, name: str, url: str, **kwargs: Any) -> None:
        super().__init__(name, url, **kwargs)

    def payload(self, alert: Alert) -> Any:
        return slack_payload(alert)
