"""The control socket (dfota-sim --control PATH) and dfota-simctl, as a test
rig uses them: the JSON-lines protocol and its refusals, status, power off /
on, reset, DTR and RTS, the network, the event stream, and every error code
of the application note's chapter 4 reached on cue through one named fault
or action (the README's table "to get code N", one case each here), with
the modem driven through its serial port as a host drives it. No sleeps:
every wait reads the port or the socket against a deadline."""
import json
import os
import re
import select
import socket
import subprocess
import time

import pytest

from conftest import BUILD, DEADLINE
from peers import NEW, OLD
from test_data_mode import connect, report, xor16
from test_http import fetch, idle_on_old_firmware
from test_update import check_cycle, fw_sha, lines, pack, run_update

SIMCTL = BUILD / "dfota-simctl"
END = re.compile(rb'\+QIND: "FOTA","END",(\d+)\r\n')


class Ctl:
    """A client of the control socket: one JSON object per line each way."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.buf = b""
        self.next_id = 0
        self.events = []  # event lines read while waiting for an answer

    def close(self):
        self.sock.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def line(self, deadline=DEADLINE):
        end = time.monotonic() + deadline
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            assert left > 0, f"no line from the control socket (have {self.buf[:200]!r})"
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                chunk = self.sock.recv(65536)
                assert chunk, "the control socket closed"
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def req(self, cmd, **fields):
        self.next_id += 1
        self.send_raw((json.dumps({"id": self.next_id, "cmd": cmd, **fields}) + "\n").encode())
        while True:
            msg = self.line()
            if "event" in msg:
                self.events.append(msg)
                continue
            assert msg["id"] == self.next_id, msg
            return msg

    def ok(self, cmd, **fields):
        a = self.req(cmd, **fields)
        assert a["ok"] is True, a
        return a

    def wait_event(self, pred, deadline=DEADLINE):
        """The first event (kept ones first) for which pred holds."""
        while self.events:
            ev = self.events.pop(0)
            if pred(ev):
                return ev
        end = time.monotonic() + deadline
        while True:
            ev = self.line(max(0.01, end - time.monotonic()))
            if "event" in ev and pred(ev):
                return ev


def simctl(path, *args, check=True):
    """dfota-simctl --control path --json args: the answer line, parsed."""
    p = subprocess.run([str(SIMCTL), "--control", str(path), "--json", *args],
                       capture_output=True, text=True, timeout=DEADLINE)
    if check:
        assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout.splitlines()[0]) if p.stdout else None, p.returncode


def wait_for(pred, what, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < end, what
        # no sleep: each pred() is a request whose answer the test waits for


@pytest.fixture
def ctl_modem(make_modem, tmp_path):
    """A booted modem with --control, ATE0, and a Ctl on its socket."""

    def make(*args):
        path = tmp_path / "ctl.sock"
        m = make_modem("--control", str(path), *args)
        m.wait_boot()
        assert m.cmd("ATE0").endswith(b"OK\r\n")
        c = Ctl(path)
        m.ctl_path = path
        return m, c

    return make


# ---- the protocol -------------------------------------------------------------

def test_status_tells_power_firmware_image_job_slot_settings_and_network(ctl_modem):
    m, c = ctl_modem()
    s = wait_for(lambda: (lambda a: a if a["image_sha256"] else None)(c.ok("status")),
                 "the image digest")
    assert s["power"] == "normal" and s["model"] == "BG95-M3" and s["firmware"] == OLD
    assert s["image_sha256"] == fw_sha(m)
    assert s["job"] == {"state": "idle", "kind": None, "stage": None, "percent": -1,
                        "bytes": 0, "total": 0}
    assert s["slot"] == {"size": 0, "capacity": 7296 * 1024}
    assert s["trigger_mode"] == 1
    assert s["settings"] == {"ipr": 115200, "dtr_mode": 2, "fota_apn": '0,""'}
    assert s["network"]["registration"] == "registered" and s["network"]["csq"] == 26
    # what the host changes shows
    assert m.cmd("AT+QFOTADL=3,0") == b"\r\nOK\r\n"
    assert m.cmd("AT&D1") == b"\r\nOK\r\n"
    assert m.cmd('AT+QCFGEXT="fota_apn",0,"iot.example"') == b"\r\nOK\r\n"
    s = c.ok("status")
    assert s["trigger_mode"] == 0 and s["settings"]["dtr_mode"] == 1
    assert s["settings"]["fota_apn"] == '0,"iot.example"'


def test_malformed_and_oversized_lines_get_errors_and_leave_the_modem_alone(ctl_modem):
    m, c = ctl_modem()
    for raw, err in [(b"not json\n", "not JSON"), (b"[1]\n", "a request is a JSON object"),
                     (b'{"cmd":"status"}\n', 'no "id"'), (b'{"id":7}\n', 'no "cmd" string'),
                     (b'{"id":8,"cmd":"fly"}\n', "unknown command"),
                     (b'{"id":9,"cmd":"power","state":"sideways"}\n',
                      '"state" is "off" or "on"'),
                     (b'{"id":10,"cmd":"fault","op":"arm","spec":"dns.fail=3"}\n',
                      "this fault takes no value"),
                     (b"x" * (70 * 1024) + b"\n", "line too long (at most 65536 bytes)")]:
        c.send_raw(raw)
        a = c.line()
        assert a["ok"] is False and a["error"] == err, (raw[:40], a)
        if raw.startswith(b'{"id"'):
            assert a["id"] == json.loads(raw)["id"]
    c.send_raw(b"\n\r\n")  # blank lines ask nothing
    assert c.ok("status")["power"] == "normal"
    assert m.cmd("AT") == b"\r\nOK\r\n"
    assert m.read_for(0.1) == b""


def test_several_clients_at_once_each_get_their_answers(ctl_modem):
    m, c = ctl_modem()
    others = [Ctl(m.ctl_path) for _ in range(3)]
    for i, o in enumerate(others):
        o.send_raw(json.dumps({"id": f"c{i}", "cmd": "status"}).encode())  # no newline yet
    for i, o in enumerate(reversed(others)):
        o.send_raw(b"\n")
    for i, o in enumerate(others):
        a = o.line()
        assert a["id"] == f"c{i}" and a["ok"] is True
        o.close()
    assert c.ok("status")["power"] == "normal"


def test_socket_is_0600_refuses_a_file_and_replaces_a_stale_socket(make_modem, tmp_path):
    path = tmp_path / "ctl.sock"
    path.write_text("mine")
    p = subprocess.run([str(BUILD / "dfota-sim"), "--control", str(path), "--uart",
                        str(tmp_path / "x.tty"), "--state-dir", str(tmp_path / "st")],
                       capture_output=True, text=True, timeout=DEADLINE)
    assert p.returncode == 1 and "not a socket" in p.stderr, p.stderr
    assert path.read_text() == "mine"
    path.unlink()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # bound, nobody listening: what a kill -9 leaves
    m = make_modem("--control", str(path))
    assert (os.stat(path).st_mode & 0o777) == 0o600
    assert Ctl(path).ok("status")["model"] == "BG95-M3"
    m.stop()
    assert not path.exists()  # removed at the clean shutdown


# ---- power, lines, network ----------------------------------------------------

def test_power_off_is_a_cut_and_power_on_boots(ctl_modem):
    m, c = ctl_modem()
    assert m.cmd("ATE1") == b"\r\nOK\r\n"  # volatile: gone with the power
    c.ok("power", state="off")
    assert c.ok("status")["power"] == "off"
    assert c.req("power", state="off")["error"] == "the module is off already"
    m.write(b"AT\r")
    assert m.read_for(0.2) == b""  # nothing answers
    m.close()
    m.open()  # a host opening the port does not power it on
    assert m.read_for(0.1) == b""
    c.ok("power", state="on")
    m.wait_boot()
    assert m.cmd("AT") == b"AT\r\r\nOK\r\n"  # echo on again: ATE0 was not saved
    assert c.req("power", state="on")["error"] == "the module is on already"


def test_reset_reboots_and_watch_streams_power_changes_and_urcs(ctl_modem):
    m, c = ctl_modem()
    c.ok("watch")
    c.ok("reset")
    m.wait_boot()
    ev = c.wait_event(lambda e: e["event"] == "power" and e["to"] == "resetting")
    assert ev["from"] == "normal"
    for text in ["RDY", "APP RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"]:
        assert c.wait_event(lambda e: e["event"] == "urc")["text"] == text


def test_dtr_drop_in_com_upload_with_d1_leaves_data_mode_and_keeps_the_data(ctl_modem):
    m, c = ctl_modem()
    assert m.cmd("AT&D1") == b"\r\nOK\r\n"
    c.ok("watch")
    head = bytes(range(256)) * 40
    connect(m, 'AT+QFOTADL="COM:",100000,3600')
    m.write(head)
    wait_for(lambda: c.ok("status")["job"]["bytes"] >= len(head), "the bytes in the slot")
    assert c.ok("status")["data_mode"] is True
    c.ok("dtr", on=False)
    assert report(m, "QFOTADL") == (len(head), xor16(head))
    ev = c.wait_event(lambda e: e["event"] == "data" and not e["on"])
    assert ev["why"] == "escaped" and ev["port"] == "UART"
    c.ok("dtr", on=True)
    assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{len(head)}\r\n\r\nOK\r\n".encode()


def test_dtr_drop_with_d0_is_ignored(ctl_modem):
    m, c = ctl_modem()
    assert m.cmd("AT&D0") == b"\r\nOK\r\n"
    connect(m, 'AT+QFOTADL="COM:",1000,3600')
    m.write(b"abc")
    c.ok("dtr", on=False)
    assert m.read_for(0.2) == b""  # still in data mode
    m.write(bytes(997))
    assert report(m, "QFOTADL")[0] == 1000


def test_rts_off_holds_output_until_on(ctl_modem):
    m, c = ctl_modem()
    c.ok("rts", on=False)
    assert c.ok("status")["lines"]["rts"] is False
    m.write(b"AT\r")
    assert m.read_for(0.2) == b""
    c.ok("rts", on=True)
    assert m.read_until(b"\r\nOK\r\n") == b"\r\nOK\r\n"


def test_network_denied_fails_a_download_702_and_urcs_tell_the_host(ctl_modem, nginx):
    m, c = ctl_modem()
    assert m.cmd("AT+CEREG=1") == b"\r\nOK\r\n"
    n = c.ok("network", registration="denied", csq=10, operator="Test Net",
             link_rate=50000, latency_ms=20)
    assert (n["registration"], n["csq"], n["operator"], n["link_rate"], n["latency_ms"],
            n["attached"]) == ("denied", 10, "Test Net", 50000, 20, False)
    assert m.read_until(b"+CEREG: 3\r\n").endswith(b"+CEREG: 3\r\n")
    assert m.cmd("AT+CSQ") == b"\r\n+CSQ: 10,99\r\n\r\nOK\r\n"
    fetch(m, nginx.url("/pkg/update.pkg"), err=702)
    c.ok("network", registration="registered")
    assert m.read_until(b"+CEREG: 1\r\n").endswith(b"+CEREG: 1\r\n")
    assert c.req("network", registration="lost")["ok"] is False
    assert c.req("network", csq=40)["ok"] is False


# ---- faults -----------------------------------------------------------------

def test_fault_fires_once_unless_sticky_and_list_and_clear(ctl_modem, nginx):
    m, c = ctl_modem()
    c.ok("watch")
    a, _ = simctl(m.ctl_path, "fault", "arm", "dns.fail")
    armed = [f for f in a["faults"] if f["armed"]]
    assert [(f["name"], f["sticky"]) for f in armed] == [("dns.fail", False)]
    fetch(m, nginx.url("/pkg/update.pkg"), err=702)
    assert c.wait_event(lambda e: e["event"] == "fault")["name"] == "dns.fail"
    assert not any(f["armed"] for f in c.ok("fault", op="list")["faults"])
    assert m.cmd("AT+QFOTADL=5") == b"\r\nOK\r\n"
    simctl(m.ctl_path, "fault", "arm", "http.status=500", "--sticky")
    for _ in range(2):
        fetch(m, nginx.url("/pkg/update.pkg"), err=703)
    simctl(m.ctl_path, "fault", "clear", "http.status")
    fetch(m, nginx.url("/pkg/update.pkg"), err=0)
    m.read_until(b'"END",0')
    m.wait_boot()


def test_urc_delay_holds_a_urc_and_those_after_it(ctl_modem):
    m, c = ctl_modem()
    c.ok("fault", op="arm", spec="urc.delay=300")
    c.ok("reset")
    t0 = time.monotonic()
    m.read_until(b"RDY\r\n")
    assert time.monotonic() - t0 >= 0.3
    m.wait_boot()  # the rest, in order, behind it


def test_uart_drop_loses_bytes_on_the_wire(ctl_modem):
    m, c = ctl_modem()
    c.ok("fault", op="arm", spec="uart.drop=1")
    m.write(b"AT\r")
    assert m.read_for(0.2) == b""  # the whole answer lost
    assert m.cmd("AT") == b"\r\nOK\r\n"  # once


def test_power_cut_at_40_percent_of_updating_then_power_on_resumes_to_end_0(
        ctl_modem, packages):
    m, c = ctl_modem()
    data = packages.data("big.pkg")
    simctl(m.ctl_path, "fault", "arm", "update.power_cut_at=40")
    c.ok("watch")
    connect(m, f'AT+QFOTADL="COM:",{len(data)}')
    m.write(data)
    assert report(m, "QFOTADL") == (len(data), xor16(data))  # the trigger starts the update
    c.wait_event(lambda e: e["event"] == "power" and e["to"] == "off", deadline=60)
    raw = m.read_for(0.3)
    pcts = [int(p) for p in re.findall(rb'"UPDATING",(\d+)%', raw)]
    # the cut comes at 40 %; what the UART still held for the host (DFOTA
    # mode paces it at the AT+IPR rate) is lost with the power, as it is on
    # the real module: the host may have seen less
    assert all(p < 100 for p in pcts), raw
    assert b'"END"' not in raw
    s = c.ok("status")
    assert s["power"] == "off" and s["firmware"] == OLD
    c.ok("power", state="on")
    urcs = lines(m.read_until(b'"END",', deadline=60) + m.wait_boot())
    resumed = check_cycle(urcs, 0)
    assert resumed[0] >= 40, resumed  # went on where it was, not from the start
    assert m.cmd("ATE0").endswith(b"OK\r\n")
    assert m.cmd("AT+QGMR") == f"\r\n{NEW}\r\n\r\nOK\r\n".encode()
    s = wait_for(lambda: (lambda a: a if a["image_sha256"] == fw_sha(m) else None)(
        c.ok("status")), "the new image's digest")
    assert s["firmware"] == NEW


# ---- every code of chapter 4, one named way each (README "to get code N") -----

def download(m, nginx, code):
    fetch(m, nginx.url("/pkg/update.pkg"), err=code)
    idle_on_old_firmware(m)


def download_big(m, nginx, code):
    fetch(m, nginx.url("/pkg/big.pkg"), err=code)
    idle_on_old_firmware(m)


def bad_url(m, nginx, code):
    fetch(m, "http://127.0.0.1:0/pkg/update.pkg", err=code)


def com_then_update(m, data, code):
    """A "COM:" upload, and the update its trigger (mode 1) starts."""
    connect(m, f'AT+QFOTADL="COM:",{len(data)}')
    m.write(data)
    assert report(m, "QFOTADL") == (len(data), xor16(data))
    check_cycle(run_update(m, start=False), code)
    assert m.cmd("ATE0").endswith(b"OK\r\n")
    assert m.cmd("AT+QGMR") == f"\r\n{OLD}\r\n\r\nOK\r\n".encode()


def update(m, packages, tmp_path, code):
    com_then_update(m, packages.data("update.pkg"), code)


def update_other_firmware(m, packages, tmp_path, code):
    com_then_update(m, pack(tmp_path, "BG95M3LAR02A02_01.001.01.001", NEW).read_bytes(), code)


def update_empty_slot(m, packages, tmp_path, code):
    assert m.cmd("AT+QFOTADL=5") == b"\r\nOK\r\n"
    check_cycle(run_update(m), code)


def com_too_big(m, packages, tmp_path, code):
    assert m.cmd('AT+QFOTADL="COM:",1000') == f"\r\n+CME ERROR: {code}\r\n".encode()


def busy(m, nginx, code):
    assert m.cmd(f'AT+QFOTADL="{nginx.url("/pkg/update.pkg")}"') == b"\r\nOK\r\n"
    m.read_until(b'"DOWNLOADING",')
    # an answer during a download may carry its URCs before it
    assert m.cmd("AT+QFOTADL=1").endswith(f"\r\n+CME ERROR: {code}\r\n".encode())
    assert m.cmd("AT+QFOTADL=5").endswith(f"\r\n+CME ERROR: {code}\r\n".encode())
    m.read_until(b'"HTTPEND",704\r\n')


# (code, fault armed first or None, what the host then does); the README's
# table says the same in words.
CODES = [
    (701, "net.start_fail", download),
    (702, "dns.fail", download),
    (702, "tcp.refuse", download),
    (703, "http.status=500", download),
    (704, "download.drop_at=50", download_big),
    (704, "download.stall_at=50", download_big),
    (705, None, bad_url),
    (706, "http.status=404", download),
    (707, "slot.write_fail", download),
    (708, "slot.full", download),
    (710, "package.corrupt", download),
    (504, "update.fail_at=40", update),
    (505, None, update_empty_slot),
    (506, "package.corrupt", update),
    (511, None, update_other_firmware),
    (512, "update.unknown", update),
    (590, "slot.full", com_too_big),
    (591, "download.stall_at=50", busy),
]


@pytest.mark.parametrize("code, fault, action", CODES,
                         ids=[f"{c}-{f or a.__name__}" for c, f, a in CODES])
def test_every_chapter_4_code_on_cue(ctl_modem, request, tmp_path, code, fault, action):
    m, c = ctl_modem()
    if fault:
        a, _ = simctl(m.ctl_path, "fault", "arm", fault)
        assert any(f["armed"] for f in a["faults"])
    needs = action.__code__.co_varnames[:action.__code__.co_argcount]
    if "nginx" in needs:
        action(m, request.getfixturevalue("nginx"), code)
    else:
        action(m, request.getfixturevalue("packages"), tmp_path, code)
    if fault:  # it fired, once
        assert not any(f["armed"] for f in c.ok("fault", op="list")["faults"]), fault


def test_tls_handshake_fault_fails_an_https_download_702(ctl_modem, nginx):
    m, c = ctl_modem()
    c.ok("fault", op="arm", spec="tls.handshake")
    fetch(m, nginx.url("/pkg/update.pkg", "https"), err=702)


# ---- dfota-simctl ---------------------------------------------------------------

def test_simctl_human_output_exit_codes_and_watch(ctl_modem, tmp_path):
    m, c = ctl_modem()
    env = {**os.environ, "DFOTA_CONTROL": str(m.ctl_path)}
    run = lambda *a: subprocess.run([str(SIMCTL), *a], capture_output=True, text=True,
                                    env=env, timeout=DEADLINE)
    p = run("status")
    assert p.returncode == 0 and re.search(r"^power +normal$", p.stdout, re.M), p.stdout
    assert re.search(rf"^firmware +{OLD}$", p.stdout, re.M), p.stdout
    p = run("power", "on")
    assert p.returncode == 1 and "on already" in p.stderr
    assert run("fly").returncode == 2
    assert run("--control", str(tmp_path / "none.sock"), "status").returncode == 3
    p = run("fault", "arm", "urc.delay=5", "--sticky")
    assert p.returncode == 0 and re.search(r"^urc\.delay=5 +armed, sticky", p.stdout, re.M)
    run("fault", "clear", "all")
    w = subprocess.Popen([str(SIMCTL), "watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert "watching" in w.stderr.readline()  # its answer is in: events follow
        assert run("reset").returncode == 0
        got = [w.stdout.readline() for _ in range(5)]
        assert "power normal -> resetting (command)" in got[0], got
        assert "urc   RDY" in "".join(got), got
    finally:
        w.terminate()
        w.wait(timeout=DEADLINE)


def test_simctl_watch_draws_a_progress_line(ctl_modem, packages):
    m, c = ctl_modem()
    w = subprocess.Popen([str(SIMCTL), "--control", str(m.ctl_path), "watch"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "watching" in w.stderr.readline()
        data = packages.data("update.pkg")
        connect(m, f'AT+QFOTADL="COM:",{len(data)}')
        m.write(data)
        report(m, "QFOTADL")
        check_cycle(run_update(m, start=False), 0)
        seen = []
        while not any("END" in l for l in seen):
            seen.append(w.stdout.readline())
        bars = [l for l in seen if "UPDATING" in l and "[" in l]
        assert bars and bars[-1].rstrip().endswith("100%"), seen
        assert "#" * 40 in bars[-1]
    finally:
        w.terminate()
        w.wait(timeout=DEADLINE)
