"""Real syslog daemons for the source tests: a private rsyslogd (its own config, work
directory and ports; never the system's daemon), and a sender that counts what it sent."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from server_harness import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONF = ROOT / "deploy" / "syslog" / "rsyslog-auditkeep.conf"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def deploy_rsyslog_parts() -> tuple[str, str]:
    """The ``template(...)`` and ``action(...)`` statements of the project's own
    rsyslog configuration, as shipped (comments left out)."""
    text = "\n".join(line for line in DEPLOY_CONF.read_text().splitlines() if not line.lstrip().startswith("#"))
    template = re.search(r"^template\(.*?\)\s*$", text, re.S | re.M)
    action = re.search(r"^action\(.*?^\)", text, re.S | re.M)
    assert template is not None and action is not None, "deploy/syslog/rsyslog-auditkeep.conf changed shape"
    return template.group(0), action.group(0)


class _Daemon:
    """A daemon run by a test: its output in ``log``, ready once it listens on ``input_port``."""

    input_port: int

    def _start(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._log_fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log_fh, stderr=subprocess.STDOUT, env=env)
        try:
            wait_port(self.input_port, self.proc, timeout=20)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"{Path(cmd[0]).name}: {exc}: {self.output()}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()


class Rsyslog(_Daemon):
    """``rsyslogd -n`` with a config of its own: an imtcp input on ``input_port`` whose
    messages go through the deploy file's template and action to auditkeep at
    ``target_port`` (over TLS when ``ca`` is given)."""

    def __init__(self, workdir: Path, target_port: int, ca: Path | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.input_port = free_port()
        template, action = deploy_rsyslog_parts()
        action = action.replace('target="auditkeep.example.internal"', 'target="127.0.0.1"')
        action = re.sub(r'port="\d+"', f'port="{target_port}"', action, count=1)
        extra = ['action.resumeInterval="1"']  # retry each second, not rsyslog's default 30 s
        if ca is not None:
            extra.append('StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="anon"')
        action = action.replace('protocol="tcp"', 'protocol="tcp" ' + " ".join(extra), 1)
        assert f'port="{target_port}"' in action and 'target="127.0.0.1"' in action
        ca_line = f' DefaultNetstreamDriverCAFile="{ca}"' if ca is not None else ""
        self.conf = workdir / "rsyslog.conf"
        self.conf.write_text(
            f'global(workDirectory="{workdir}"{ca_line})\n'
            'module(load="imtcp")\n'
            f"{template}\n"
            f'ruleset(name="to-auditkeep") {{\n{action}\n}}\n'
            f'input(type="imtcp" address="127.0.0.1" port="{self.input_port}" ruleset="to-auditkeep")\n'
        )
        self._start([RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(workdir / "rsyslogd.pid")], workdir / "rsyslogd.log")


class SteadySender(threading.Thread):
    """Writes ``count`` BSD-format lines (``<13>app[77]: <tag> seq=N``) to ``port`` over
    one TCP connection at ``rate`` per second; ``sent`` is how many were written."""

    def __init__(self, port: int, count: int, rate: float, tag: str) -> None:
        super().__init__(daemon=True)
        self.port, self.count, self.rate, self.tag = port, count, rate, tag
        self.sent = 0

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            start = time.monotonic()
            for i in range(self.count):
                due = start + i / self.rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                s.sendall(f"<13>app[77]: {self.tag} seq={i}\n".encode())
                self.sent += 1


SYSLOG_NG_DEPLOY_CONF = ROOT / "deploy" / "syslog" / "syslog-ng-auditkeep.conf"
# Debian's syslog-ng conflicts with rsyslog as a package, so CI unpacks it here (.ci/run)
# and runs it from its own directory; a syslog-ng on PATH is used when there is one.
SYSLOG_NG_ROOT = Path("/opt/auditkeep-test/syslog-ng")


def syslog_ng_binary() -> tuple[str, dict[str, str], str] | None:
    """(binary, extra environment, module path) of a runnable syslog-ng, or None."""
    unpacked = SYSLOG_NG_ROOT / "usr" / "sbin" / "syslog-ng"
    if unpacked.exists():
        lib = SYSLOG_NG_ROOT / "usr" / "lib" / "syslog-ng"
        modules = sorted(p for p in lib.iterdir() if p.is_dir() and p.name[:1].isdigit())
        return str(unpacked), {"LD_LIBRARY_PATH": str(lib)}, str(modules[-1]) if modules else str(lib)
    found = shutil.which("syslog-ng")
    return (found, {}, "") if found else None


class SyslogNg(_Daemon):
    """``syslog-ng -F`` with a config of its own: a TCP source on ``input_port`` named
    ``s_src`` (the name the deploy file's ``log`` statement uses) and the deploy file's
    destination, pointed at auditkeep on ``target_port`` (over TLS when ``ca`` is given)."""

    def __init__(self, workdir: Path, target_port: int, ca: Path | None = None) -> None:
        found = syslog_ng_binary()
        assert found is not None, "syslog-ng is not available"
        binary, extra_env, modules = found
        workdir.mkdir(parents=True, exist_ok=True)
        self.input_port = free_port()
        text = SYSLOG_NG_DEPLOY_CONF.read_text()
        if ca is not None:  # the deploy file's commented TLS alternative, switched on
            text = re.sub(r'^  syslog\("auditkeep.example.internal" transport\("tcp"\) port\(\d+\)\);\n', "", text, flags=re.M)
            text = re.sub(r"^  # TLS instead:\n", "", text, flags=re.M)
            text = re.sub(r"^  # ", "  ", text, flags=re.M)
            text = text.replace("/etc/ssl/auditkeep-ca.pem", str(ca)).replace("port(6514)", f"port({target_port})")
        else:
            text = text.replace("port(5514)", f"port({target_port})")
        text = text.replace('"auditkeep.example.internal"', '"127.0.0.1"')
        assert f"port({target_port})" in text and '"127.0.0.1"' in text, "deploy/syslog/syslog-ng-auditkeep.conf changed shape"
        self.conf = workdir / "syslog-ng.conf"
        self.conf.write_text(
            "@version: 3.38\n"
            "options { time-reopen(1); flush-lines(0); };\n"  # reconnect each second, not after 60 s
            f'source s_src {{ network(transport("tcp") ip("127.0.0.1") port({self.input_port})); }};\n'
            f"{text}\n"
        )
        cmd = [binary, "-F", "-f", str(self.conf), f"--persist-file={workdir / 'persist'}",
               f"--pidfile={workdir / 'pid'}", f"--control={workdir / 'ctl'}", "--stderr"]
        if modules:
            cmd.append(f"--module-path={modules}")
        self._start(cmd, workdir / "syslog-ng.log", {**os.environ, **extra_env})
