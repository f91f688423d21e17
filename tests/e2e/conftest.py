"""End-to-end fixtures: the real dfota-sim executable on a pty, driven through
pyserial the way a host program drives a real module. No sleeps: every wait
reads the port (or the process) against a deadline.

Every dfota-sim a test starts through Modem.start() is watched: at the end of
the test each one still running gets SIGTERM, and the test fails (an error at
its teardown) when one exited non-zero or printed a sanitizer report on its
stderr. A modem the test killed with Modem.kill9() is exempt from the exit
code check only: a report it printed before it died still fails the test."""
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
import serial

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DFOTA_BUILD_DIR", ROOT / "build"))
SIM = BUILD / "dfota-sim"
PACK = BUILD / "dfota-pack"

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: [^\r\n]*|CONNECT)\r\n")
DEADLINE = 30.0  # seconds any single expected event may take on a slow (sanitizer) build
BOOT_URCS = [b"RDY", b"APP RDY", b"+CFUN: 1", b"+CPIN: READY", b"+QUSIM: 1", b"+QIND: SMS DONE"]
# What ASan, LSan, UBSan (and TSan, MSan) print when they find something.
SANITIZER_REPORT = re.compile(r"ERROR: \w*Sanitizer|SUMMARY: \w*Sanitizer|runtime error: "
                              r"|UndefinedBehaviorSanitizer|WARNING: ThreadSanitizer")


class Run:
    """One dfota-sim process of a Modem (a Modem restarted has several)."""

    def __init__(self, proc):
        self.proc = proc
        self.killed = False  # kill -9 on purpose: its exit code says nothing


class Modem:
    """One dfota-sim process and an open serial port to it."""

    started = []  # every Modem started during the current test (see watch_modems)

    def __init__(self, workdir: Path, args=()):
        self.workdir = workdir
        self.tty = workdir / "modem.tty"
        self.state = workdir / "state"
        self.args = list(args)
        self.proc = None
        self.ser = None
        self.pending = b""  # read from the port, not yet consumed
        self.stderr = workdir / "stderr.log"
        self.runs = []

    # -- process --------------------------------------------------------
    def start(self, wait_open=True, open_port=True, extra=(), bare=False):
        """Starts dfota-sim and reads its ready line. bare: with only the
        Modem's args, nothing added (defaults: ./dfota-sim.tty and
        ./dfota-state in the workdir, the standard profile)."""
        cmd = [str(SIM), "--uart", str(self.tty), "--state-dir", str(self.state),
               "--profile", "fast", *self.args, *extra]
        if wait_open:
            cmd.append("--wait-open")
        if bare:
            self.tty = self.workdir / "dfota-sim.tty"
            self.state = self.workdir / "dfota-state"
            cmd = [str(SIM), *self.args, *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=open(self.stderr, "ab"), cwd=self.workdir)
        self.runs.append(Run(self.proc))
        if self not in Modem.started:
            Modem.started.append(self)
        self.ready_line = self._read_stdout_line()
        assert self.ready_line.startswith("dfota-sim: "), self.ready_line
        assert self.ready_line.endswith(" on " + ("./dfota-sim.tty" if bare else str(self.tty))), \
            self.ready_line
        if open_port:
            self.open()
        return self

    def _read_stdout_line(self):
        end = time.monotonic() + DEADLINE
        buf = b""
        fd = self.proc.stdout.fileno()
        while not buf.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"no ready line (got {buf!r}); stderr: {self.log()}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 1)
                if not chunk:
                    continue
                buf += chunk
        return buf.decode().strip()

    def log(self):
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""

    def kill9(self):
        self.close()
        self.runs[-1].killed = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE)

    def stop(self):
        """SIGTERM and wait: the clean shutdown path. Returns the exit code."""
        self.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("dfota-sim did not stop on SIGTERM")
        return self.proc.returncode if self.proc else 0

    # -- port -----------------------------------------------------------
    def open(self, baudrate=115200):
        self.ser = serial.Serial(str(self.tty), baudrate=baudrate, timeout=0.05)
        self.pending = b""
        return self.ser

    def close(self):
        if self.ser is not None:
            self.ser.close()
            self.ser = None

    def write(self, data: bytes):
        self.ser.write(data)
        self.ser.flush()

    def _read(self) -> bytes:
        """What has arrived, as soon as one byte has (read(4096) would wait
        out the port's 50 ms timeout for a short answer: every wait, and
        every time bench_http measures, rounded up to 50 ms)."""
        return self.ser.read(self.ser.in_waiting or 1)

    def _take(self, pattern, deadline, what):
        """Reads until pattern (a compiled regex) matches what has arrived;
        returns the bytes up to the end of the match, keeps the rest."""
        end = time.monotonic() + deadline
        while True:
            mt = pattern.search(self.pending)
            if mt:
                out, self.pending = self.pending[:mt.end()], self.pending[mt.end():]
                return out
            if time.monotonic() > end:
                raise AssertionError(f"waited for {what}, got {self.pending!r}")
            self.pending += self._read()

    def read_until(self, marker: bytes, deadline=DEADLINE) -> bytes:
        """Everything read up to and including marker."""
        return self._take(re.compile(re.escape(marker)), deadline, repr(marker))

    def read_for(self, seconds: float) -> bytes:
        """Whatever arrives in a quiet window (used to prove silence)."""
        buf = bytearray(self.pending)
        self.pending = b""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            buf += self._read()
        return bytes(buf)

    def wait_boot(self) -> bytes:
        return self.read_until(b"+QIND: SMS DONE\r\n")

    def cmd(self, line: str) -> bytes:
        """Sends one command line and returns all bytes up to its final result."""
        self.write(line.encode() + b"\r")
        return self._take(FINAL, DEADLINE, f"the final result of {line!r}")


def check_runs(modems):
    """Stops every modem of @modems still running (SIGTERM) and returns what
    went wrong: a run that exited non-zero (unless killed on purpose), a
    sanitizer report in a modem's stderr."""
    problems = []
    for m in modems:
        try:
            m.stop()
        except Exception as exc:  # noqa: BLE001 -- reported below
            problems.append(f"{m.workdir}: {exc}")
        for run in m.runs:
            rc = run.proc.poll()
            if rc is None:
                run.proc.kill()
                run.proc.wait()
                problems.append(f"dfota-sim pid {run.proc.pid} was still running")
            elif rc != 0 and not run.killed:
                problems.append(f"dfota-sim pid {run.proc.pid} exited with {rc}")
    for log in sorted({m.stderr for m in modems}):
        text = log.read_text(errors="replace") if log.exists() else ""
        mt = SANITIZER_REPORT.search(text)
        if mt:
            start = text.rfind("\n", 0, max(0, mt.start() - 2000)) + 1
            problems.append(f"sanitizer report in {log}:\n{text[start:mt.start() + 4000]}")
    return problems


@pytest.fixture(autouse=True)
def watch_modems():
    """Fails the test when a dfota-sim it started exited non-zero or
    printed a sanitizer report (see the module's docstring)."""
    Modem.started = []
    yield
    modems, Modem.started = Modem.started, []
    problems = check_runs(modems)
    if problems:
        logs = "".join(f"\n--- {log}:\n" + log.read_text(errors="replace")[-3000:]
                       for log in sorted({m.stderr for m in modems}) if log.exists())
        pytest.fail("\n".join(problems) + logs, pytrace=False)


@pytest.fixture
def make_modem(tmp_path):
    """Factory: make_modem(*args) -> a started Modem (port open, powered on
    at the open). Every modem is stopped at the end of the test (watch_modems)."""

    def make(*args, **kw):
        return Modem(tmp_path, args).start(**kw)

    return make  # watch_modems stops them and checks how they ended


@pytest.fixture
def modem(make_modem):
    """A booted modem on the fast profile with ATE1 (the default)."""
    m = make_modem()
    m.wait_boot()
    return m


# ---- HTTP(S) peers (tests/e2e/peers.py) --------------------------------------
# Session-wide: the certificates, the packages and one nginx serving them
# (made once, a second or so); per test: the Python server (its stalls end
# with the test).

@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """peers.Certs: ca, other_ca, client_ca, server, wrong_name, client."""
    import peers
    return peers.Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    """peers.Packages: the served files (update.pkg, big.pkg, ...)."""
    import peers
    return peers.Packages(tmp_path_factory.mktemp("www"), PACK)


@pytest.fixture(scope="session")
def nginx(tmp_path_factory, packages, certs):
    """peers.Nginx serving @packages: nginx.url("/pkg/update.pkg"),
    nginx.url("/gone", "https", host="localhost"), ..."""
    import peers
    server = peers.Nginx(tmp_path_factory.mktemp("nginx"), packages.dir, certs).start()
    yield server
    server.stop()


@pytest.fixture
def pyhttp(packages):
    """peers.PyHttp serving @packages: pyhttp.url("/stall/update.pkg"), ...;
    stopped (every stall released) at the end of the test."""
    import peers
    server = peers.PyHttp(packages.dir).start()
    yield server
    server.stop()
