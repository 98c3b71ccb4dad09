"""Rules see every path of a source's record, however deep.

An event's metadata is bounded (``max_depth`` 8), and native records nest deeper: a
CloudTrail ``AuthorizeSecurityGroupIngress`` keeps its CIDR at
``requestParameters.ipPermissions.items.ipRanges.items.cidrIp``, a Deployment its
containers' security context ten levels down. The mappers keep such parts as JSON text
(listed under ``metadata._json_text``); the engine decodes them back before rules run. The
events here come from the real mappers and, for the stored case, back out of a real ledger.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import msgspec
from alerts_helpers import cloudtrail_event, jsonl, k8s_event, shared_testdata

from auditkeep.alerts import Engine, load_rules_text
from auditkeep.alerts.backtest import simulate, stored_events
from auditkeep.ledger.ledger import Ledger
from auditkeep.model.json_text import JSON_TEXT_KEY, restore_json_text
from auditkeep.sources.cloudtrail import map_cloudtrail_record
from auditkeep.sources.kubernetes import map_k8s_record

CT_TESTS = "cloudtrail/aws_cloudtrail_rules.tests.jsonl"

OPEN_TO_THE_WORLD = """
title: Security group opened to the whole internet
id: sg-open-world
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventSource: ec2.amazonaws.com
    eventName: AuthorizeSecurityGroupIngress
    requestParameters.ipPermissions.items.ipRanges.items.cidrIp: 0.0.0.0/0
  condition: selection
level: high
"""

PRIVILEGED_DEPLOYMENT = """
title: Deployment with a privileged container
id: privileged-deployment
logsource: {product: kubernetes, service: audit}
detection:
  selection:
    verb: create
    objectRef.resource: deployments
    requestObject.spec.template.spec.containers.securityContext.privileged: 'true'
  condition: selection
level: high
"""


def _panther_log(name: str) -> dict[str, Any]:
    return next(t["log"] for t in jsonl(shared_testdata() / CT_TESTS) if t["test_name"] == name)


def _deployment(privileged: bool) -> dict[str, Any]:
    """Falco's create_deployment trace; with ``privileged``, its container asks for a
    privileged security context (the only change)."""
    path = shared_testdata() / "kubernetes" / "falco-traces" / "create_deployment.json"
    raw: dict[str, Any] = json.loads(path.read_text().splitlines()[0])
    if privileged:
        raw["auditID"] = raw["auditID"][:-4] + "beef"  # another request
        raw["requestObject"]["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return raw


def _fired(rule_text: str, events: list[dict[str, Any]]) -> int:
    rules, errors = load_rules_text(rule_text)
    assert errors == []
    eng = Engine(rules)
    return sum(len(eng.process("acme", i, e)) for i, e in enumerate(events))


def test_cloudtrail_cidr_past_the_depth_limit_matches() -> None:
    world = cloudtrail_event(_panther_log("Go Script Authorize Ingress"))  # 0.0.0.0/0, port 22
    # the CIDR is nested past the limit: the stored event holds that part as JSON text
    assert world["metadata"][JSON_TEXT_KEY] == ["/cloudtrail/requestParameters/ipPermissions/items/0/ipRanges/items/0"]
    assert isinstance(world["metadata"]["cloudtrail"]["requestParameters"]["ipPermissions"]["items"][0]["ipRanges"]["items"][0], str)
    assert _fired(OPEN_TO_THE_WORLD, [world]) == 1
    narrow = cloudtrail_event(_panther_log("AWS Console - Ingress SG Authorization"))  # 0.0.0.0/16
    egress = cloudtrail_event(_panther_log("Terraform Security Group Authorize Egress"))  # 0.0.0.0/0, egress
    assert _fired(OPEN_TO_THE_WORLD, [narrow, egress]) == 0


def test_privileged_container_of_a_deployment_matches() -> None:
    privileged = k8s_event(_deployment(True))
    assert "/k8s/requestObject/spec/template/spec/containers/0/securityContext" in privileged["metadata"][JSON_TEXT_KEY]
    assert _fired(PRIVILEGED_DEPLOYMENT, [privileged]) == 1
    assert _fired(PRIVILEGED_DEPLOYMENT, [k8s_event(_deployment(False))]) == 0


def test_stored_events_match_too(make_ledger: Callable[..., Ledger]) -> None:
    """Through a real ledger (SQLite and PostgreSQL) and the reader the runner and
    ``rules backtest`` use: the rules fire on what was stored."""
    ledger = make_ledger()
    events = [
        map_cloudtrail_record(_panther_log("Go Script Authorize Ingress")),
        map_cloudtrail_record(_panther_log("AWS Console - Ingress SG Authorization")),
        map_k8s_record(_deployment(True)),
        map_k8s_record(_deployment(False)),
    ]
    ledger.append(events, "acme")
    stored = list(stored_events(ledger, "acme", 0, ledger.head("acme").size))
    assert len(stored) == 4
    rules = load_rules_text(OPEN_TO_THE_WORLD)[0] + load_rules_text(PRIVILEGED_DEPLOYMENT)[0]
    found = simulate(rules, stored)
    assert sorted((a.rule_id, a.first_index) for a in found) == [("privileged-deployment", 2), ("sg-open-world", 0)]


def test_restoring_gives_back_the_record_the_source_sent_and_changes_nothing_stored() -> None:
    raw = _deployment(True)
    ev = msgspec.to_builtins(map_k8s_record(copy.deepcopy(raw)))
    before = json.dumps(ev, sort_keys=True)
    whole = restore_json_text(ev["metadata"])
    assert whole["k8s"] == raw
    assert json.dumps(ev, sort_keys=True) == before  # the stored shape is untouched
    # a listed place whose text is no longer JSON (redacted, edited) stays as it is
    meta = {"k8s": {"a": "[redacted]", "b": "{not json"}, JSON_TEXT_KEY: ["/k8s/a", "/k8s/b", "/nowhere/x", 7]}
    assert restore_json_text(meta) == meta


def test_keys_with_slashes_and_tildes_round_trip() -> None:
    deep: Any = {"x": 1}
    for _ in range(9):
        deep = {"a/b~c": deep}
    ev = msgspec.to_builtins(map_k8s_record({**_deployment(False), "requestObject": copy.deepcopy(deep)}))
    (ptr,) = ev["metadata"][JSON_TEXT_KEY]
    assert "a~1b~0c" in ptr
    assert restore_json_text(ev["metadata"])["k8s"]["requestObject"] == deep
