"""Screenshots of every console page into docs/screenshots/ (run by hand, not by pytest):

    .venv/bin/python tests/console/make_screenshots.py

A real server over a fresh data directory with generated events, Debian's Chromium."""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "server"), str(HERE.parent)]

from console_support import CHROMIUM, add_user, auditkeep, sign_in  # noqa: E402
from http_server_support import Server  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

OUT = HERE.parents[1] / "docs" / "screenshots"
RULE = "rules:\n  - id: secret-read\n    name: Production secret read\n    severity: high\n    match: {action: secrets.read}\n"


def events(n: int) -> list[dict[str, object]]:
    rng = random.Random(7)
    now = time.time()
    actions = ["doc.read", "doc.update", "user.login", "user.logout", "payroll.view", "secrets.read"]
    out: list[dict[str, object]] = []
    for _ in range(n):
        t = now - rng.uniform(0, 86400)
        action = rng.choice(actions)
        outcome = rng.choices(["success", "failure", "denied", "error"], [80, 10, 7, 3])[0]
        out.append({
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
            "actor": {"id": rng.choice(["alice", "bob", "carol", "dave", "svc-backup"]), "type": "user", "ip": f"192.0.2.{rng.randint(1, 254)}"},
            "action": action, "outcome": outcome, "category": "authentication" if action.startswith("user.") else "data_access",
            "resource": {"type": action.split(".")[0], "id": f"r{rng.randint(1, 40)}"},
            "metadata": {"request_bytes": rng.randint(100, 5000)},
        })  # fmt: skip
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp()) / "data"
    auditkeep(data, "init")
    add_user(data, "acme", "alice", "admin")
    add_user(data, "acme", "olga", "auditor")
    srv = Server(data)
    try:
        with srv.client(srv.admin) as c:
            c.post("/v1/rules", params={"tenant": "acme"}, content=RULE, headers={"Content-Type": "application/yaml"})
            time.sleep(3)
            r = c.post("/v1/events", params={"tenant": "acme"}, json=events(600))
            first = r.json()["receipts"][0]["id"]
            time.sleep(3)
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            ctx = b.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            page.goto(srv.url + "/ui/login")
            page.screenshot(path=str(OUT / "login.png"))
            sign_in(page, srv.url, "alice")
            for name, path in (("search", "/ui/search?range=24h"), ("event", f"/ui/events/{first}"),
                               ("alerts", "/ui/alerts"), ("integrity", "/ui/integrity"),
                               ("timeline", "/ui/actors/carol?range=24h"), ("users", "/ui/admin/users")):  # fmt: skip
                page.goto(srv.url + path)
                if name == "integrity":  # with the result of a Verify now (run in the background)
                    page.get_by_role("button", name="Verify now").click()
                    page.locator("#report .verdict").wait_for(timeout=60_000)
                time.sleep(1)
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=name in ("event", "integrity", "users"))
            page.goto(srv.url + "/ui/live")
            time.sleep(1)
            with srv.client(srv.admin) as c:
                c.post("/v1/events", params={"tenant": "acme"}, json=events(8))
            time.sleep(2)
            page.screenshot(path=str(OUT / "live.png"))
            page.goto(srv.url + "/ui/search?range=24h&actor=carol")
            page.get_by_label("Comment").fill("Carol's access reviewed against the change tickets")
            page.get_by_role("button", name="Sign off as reviewed").click()
            time.sleep(1)
            page.screenshot(path=str(OUT / "reviews.png"))
            phone = b.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            pp = phone.new_page()
            sign_in(pp, srv.url, "alice")
            pp.goto(srv.url + "/ui/search?range=24h")
            time.sleep(1)
            pp.screenshot(path=str(OUT / "search-phone.png"))
            pp.goto(srv.url + f"/ui/events/{first}")
            time.sleep(1)
            pp.screenshot(path=str(OUT / "event-phone.png"))
            phone.close()
            ctx.close()
            b.close()
    finally:
        srv.stop()
    print("\n".join(sorted(p.name for p in OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
