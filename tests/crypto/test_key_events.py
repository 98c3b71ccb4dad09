"""Key rotations are audit events: re-wrapping the data keys under a new master key and
re-encrypting the payloads each append an event to every tenant's log (both stores), with
generations and counts and no key material; so does a new signing key."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_atrest import _cli, _events  # type: ignore[import-not-found]

from auditkeep.crypto.atrest import LocalKms, new_master_key
from auditkeep.ledger import Ledger
from auditkeep.ledger.atrest import KEYS, EncryptedStore
from auditkeep.ledger.key_events import (
    REENCRYPTED,
    ROTATED,
    SIGNING_ROTATED,
    reencrypt_all,
    rotate_master_key,
)

ACTOR = {"id": "cli:tester", "type": "user"}


def _recorded(lg: Ledger, action: str, tenant: str) -> list[dict[str, Any]]:
    page = lg.search(tenant, action=action, limit=50)
    return [r.event.metadata or {} for r in page.items]


def _leaves(store: EncryptedStore) -> bytes:
    """Every leaf of every tenant, opened: what an event could have carried."""
    out = []
    for h in store.heads():
        out += [e.leaf for e in store.entries(h.tenant_id, 0, h.size)]
    return b"\n".join(out)


def _raw_keys(store: EncryptedStore) -> list[bytes]:
    """Every data and index key of the store, unwrapped."""
    out = []
    for d in store.inner.doc_list(KEYS, limit=1000):
        rec = json.loads(d.data)
        out.append(store.keys.kms.unwrap(base64.b64decode(rec["wrapped"]), d.id.encode()))
    assert len(out) >= 5
    return out


def test_rotation_and_reencryption_are_recorded_in_each_tenant(open_encrypted: Callable[..., Ledger]) -> None:
    lg = open_encrypted()
    lg.append(_events(5), tenant="acme")
    lg.append(_events(3), tenant="globex")
    store = lg.store
    assert isinstance(store, EncryptedStore)
    old_id = store.keys.kms.key_id
    master = new_master_key()
    new = LocalKms(master)
    n = rotate_master_key(lg, new, ACTOR)
    for tenant in ("acme", "globex"):
        [meta] = _recorded(lg, ROTATED, tenant)
        assert meta == {"from_master_key": old_id, "to_master_key": new.key_id, "keys_rewrapped": n,
                        "data_key_generations": [1]}
    done = reencrypt_all(lg, ACTOR)
    assert [(r.tenant, r.generation, r.dropped) for r in done] == [("acme", 2, [1]), ("globex", 2, [1])]
    [acme] = _recorded(lg, REENCRYPTED, "acme")
    # the acme log held its 5 events and the rotation record when it was rewritten
    assert acme == {"generation": 2, "payloads_rewritten": 6, "entries": 6, "generations_deleted": [1]}
    [globex] = _recorded(lg, REENCRYPTED, "globex")
    assert globex["payloads_rewritten"] == 4 and globex["generation"] == 2
    # a second re-encryption is recorded again, with the next generation
    reencrypt_all(lg, ACTOR)
    assert sorted(m["generation"] for m in _recorded(lg, REENCRYPTED, "acme")) == [2, 3]
    # no key material in any record: neither the master key nor any data key
    leaves = _leaves(store)
    secrets = [master, *_raw_keys(store)]
    for secret in secrets:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret), base64.urlsafe_b64encode(secret)):
            assert form not in leaves
    assert lg.verify().ok


def test_the_cli_records_rotations(tmp_path: Path) -> None:
    from auditkeep.crypto.atrest import write_key_file

    data = tmp_path / "data"
    assert _cli(data, "init", "--encrypt").returncode == 0
    events = tmp_path / "ev.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in _events(4)) + "\n")
    assert _cli(data, "ingest", str(events)).returncode == 0
    new_key = tmp_path / "new.key"
    write_key_file(new_key, new_master_key())
    r = _cli(data, "encryption", "rotate", "--new-key-file", str(new_key), "--reencrypt")
    assert r.returncode == 0, r.stderr
    (data / "master.key").unlink()
    new_key.rename(data / "master.key")
    r = _cli(data, "search", "--action", "auditkeep.encryption.*", "--json")
    assert r.returncode == 0, r.stderr
    actions = sorted(json.loads(line)["event"]["action"] for line in r.stdout.splitlines() if line.strip())
    assert actions == [REENCRYPTED, ROTATED], r.stdout
    r = _cli(data, "signing-key", "rotate", "--json")
    assert r.returncode == 0, r.stderr
    keys = json.loads(r.stdout)
    r = _cli(data, "search", "--action", SIGNING_ROTATED, "--json")
    [line] = [json.loads(x)["event"] for x in r.stdout.splitlines() if x.strip()]
    assert line["metadata"] == {"previous_key": keys["old"], "new_key": keys["new"], "first_size": 6}
    assert line["actor"]["type"] == "user"

