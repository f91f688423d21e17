"""AT+QFOTADL=<HTTP(S) URL> as a host sees it (app note 2.2.3.1, 2.3;
/work/notes/contracts.md): OK at once, HTTPSTART, DOWNLOADING rising,
HTTPEND,<err>, then the update cycle; every HTTPEND code against real
peers on loopback (peers.py: nginx, a Python server for what nginx cannot
do); 590 at command time, 591 while a download runs; a kill -9 during one.
No sleeps: every wait reads the port against a deadline; read_for() proves
silence."""
import re
import socket
import time

import pytest

from conftest import DEADLINE, Modem
from peers import NEW, OLD, free_port
from test_data_mode import booted, connect, report, xor16
from test_foundation import EXAMPLE_2_3
from test_update import check_cycle, fw_sha, info, lines, run_update

HTTPEND = re.compile(rb'\+QIND: "FOTA","HTTPEND",(\d+)\r\n')
DOWNLOADING = re.compile(r'\+QIND: "FOTA","DOWNLOADING",(\d+)%')
QUIET = 0.3  # a window with nothing in it: no update started


def fetch(m, url, err=0, chunked=False, deadline=DEADLINE):
    """AT+QFOTADL=<url> on a modem with ATE0: OK, then HTTPSTART,
    DOWNLOADING rising (each value once, 100 last on success; only 100 for
    chunked), HTTPEND,<err>, and nothing else. Returns the percentages."""
    assert m.cmd(f'AT+QFOTADL="{url}"') == b"\r\nOK\r\n", url
    urcs = lines(m._take(HTTPEND, deadline, "HTTPEND"))
    assert urcs[0] == '+QIND: "FOTA","HTTPSTART"', urcs
    assert urcs[-1] == f'+QIND: "FOTA","HTTPEND",{err}', urcs
    pcts = []
    for line in urcs[1:-1]:
        mt = DOWNLOADING.fullmatch(line)
        assert mt, urcs
        pcts.append(int(mt.group(1)))
    assert pcts == sorted(set(pcts)), pcts  # rising, no repeats
    assert all(0 <= p <= 100 for p in pcts), pcts
    if err == 0:
        assert pcts and pcts[-1] == 100, pcts
        if chunked:
            assert pcts == [100], pcts
    else:
        assert 100 not in pcts or err == 710, pcts
    return pcts


def idle_on_old_firmware(m):
    """After a failure: no update starts, the old firmware runs, the job
    takes commands."""
    assert m.read_for(QUIET) == b""
    assert m.cmd("AT+QGMR") == f"\r\n{OLD}\r\n\r\nOK\r\n".encode()
    assert m.cmd("AT+QFOTADL=3") == b"\r\n+QFOTADL: 3,1\r\n\r\nOK\r\n"


def upload(m, name, data):
    connect(m, f'AT+QFUPL="{name}",{len(data)}')
    m.write(data)
    assert report(m, "QFUPL") == (len(data), xor16(data))


def updated(m, pkg_info):
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{NEW}\r\n\r\nOK\r\n".encode()
    assert fw_sha(m) == pkg_info["dst_sha256"]


# ---- success ------------------------------------------------------------------

def test_app_note_2_3_example_then_http_download_and_update(modem, nginx, packages):
    line = "AT+CSQ;+CEREG?;+CGREG?;+COPS?"
    assert modem.cmd(line) == line.encode() + b"\r" + EXAMPLE_2_3
    modem.cmd("ATE0")
    fetch(modem, nginx.url("/pkg/update.pkg"))
    urcs = run_update(modem, start=False)
    assert urcs[0] == '+QIND: "FOTA","RESETTING"', urcs
    check_cycle(urcs, 0)
    updated(modem, info(packages.path("update.pkg")))
    assert (nginx.port["http"], "GET /pkg/update.pkg HTTP/1.1", 200,
            f"127.0.0.1:{nginx.port['http']}") in nginx.requests()


@pytest.mark.parametrize("host, with_ca", [("127.0.0.1", False), ("127.0.0.1", True),
                                           ("localhost", True)])
def test_https_download_and_update(make_modem, nginx, packages, certs, host, with_ca):
    m = booted(make_modem)
    if with_ca:
        upload(m, "/datatx/fota_cacert.pem", certs.pem(certs.ca[0]))
    fetch(m, nginx.url("/pkg/update.pkg", "https", host=host))
    check_cycle(run_update(m, start=False), 0)
    updated(m, info(packages.path("update.pkg")))


def test_trigger_mode_0_waits_then_4_shows_the_size_and_1_updates(make_modem, nginx, packages):
    m = booted(make_modem)
    assert m.cmd("AT+QFOTADL=3,0") == b"\r\nOK\r\n"
    fetch(m, nginx.url("/pkg/update.pkg"))
    assert m.read_for(QUIET) == b""  # no RESETTING
    size = packages.size("update.pkg")
    assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{size}\r\n\r\nOK\r\n".encode()
    assert (m.state / "slot" / "package").read_bytes() == packages.data("update.pkg")
    check_cycle(run_update(m)[1:], 0)
    updated(m, info(packages.path("update.pkg")))


@pytest.mark.parametrize("path, chunked", [
    ("/chunked/update.pkg", True),     # no Content-Length: only 100%
    ("/r/3", False),                   # 3 redirects, one relative Location
    ("/redirect/5", False),            # 5 redirects: still allowed
    ("/slow/update.pkg", False),       # slow, never silent for the stall timeout
    ("/pkg/big.pkg", False),           # 3 MB
])
def test_download_variants_put_the_whole_package_in_the_slot(make_modem, nginx, packages,
                                                              path, chunked):
    m = booted(make_modem)
    m.cmd("AT+QFOTADL=3,0")
    pcts = fetch(m, nginx.url(path), chunked=chunked)
    name = "big.pkg" if "big" in path else "update.pkg"
    if name == "big.pkg":
        assert len(pcts) >= 2, pcts  # progress on the way, not only the end
    assert (m.state / "slot" / "package").read_bytes() == packages.data(name)
    if path == "/r/3":
        hops = [r[1] for r in nginx.requests() if r[1].split()[1] in
                ("/r/3", "/r/2", "/r/1", "/pkg/update.pkg")]
        assert hops[-4:] == [f"GET {p} HTTP/1.1" for p in
                             ("/r/3", "/r/2", "/r/1", "/pkg/update.pkg")], hops


def test_big_package_over_https_updates(make_modem, nginx, packages, certs):
    m = booted(make_modem)
    upload(m, "/datatx/fota_cacert.pem", certs.pem(certs.ca[0]))
    fetch(m, nginx.url("/pkg/big.pkg", "https"))
    check_cycle(run_update(m, start=False), 0)
    updated(m, info(packages.path("big.pkg")))


@pytest.mark.parametrize("cacert", [True, False])
def test_mutual_tls_with_the_client_certificate(make_modem, nginx, packages, certs, cacert):
    m = booted(make_modem)
    if cacert:
        upload(m, "/datatx/fota_cacert.pem", certs.pem(certs.ca[0]))
    upload(m, "/datatx/fota_client_cert.pem", certs.pem(certs.client[0]))
    upload(m, "/datatx/fota_client_key.pem", certs.pem(certs.client[1]))
    m.cmd("AT+QFOTADL=3,0")
    fetch(m, nginx.url("/pkg/update.pkg", "mtls"))
    assert (m.state / "slot" / "package").read_bytes() == packages.data("update.pkg")


def test_wrong_name_is_fine_without_a_ca_file(make_modem, nginx, packages):
    """No /datatx/fota_cacert.pem: the server is not verified."""
    m = booted(make_modem)
    m.cmd("AT+QFOTADL=3,0")
    fetch(m, nginx.url("/pkg/update.pkg", "wrongname"))


@pytest.mark.parametrize("model, err", [("BG95-M3", 0), ("BG95-M1", 708)])
def test_slot_size_is_the_models(make_modem, nginx, packages, model, err):
    """between.pkg is larger than BG95-M1's 7040 KiB, within BG95-M3's 7296 KiB."""
    m = booted(make_modem, "--model", model)
    m.cmd("AT+QFOTADL=3,0")
    fetch(m, nginx.url("/pkg/between.pkg"), err)
    if err == 0:
        size = packages.size("between.pkg")
        assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{size}\r\n\r\nOK\r\n".encode()
    else:
        assert m.read_for(QUIET) == b""


# ---- HTTPEND codes ------------------------------------------------------------

def refused(nginx, pyhttp):
    return f"http://127.0.0.1:{free_port()}/pkg/update.pkg"


CODES = [
    # 702: no connection
    ("refused", refused, 702),
    ("dns", lambda n, p: "http://nonexistent.invalid/pkg/update.pkg", 702),
    ("tls-to-plain-port", lambda n, p: n.url("/pkg/update.pkg").replace(
        "http://", "https://"), 702),
    # 703: an answer that is not the package
    ("500", lambda n, p: n.url("/error"), 703),
    ("6-redirects", lambda n, p: n.url("/redirect/6"), 703),
    ("redirect-loop", lambda n, p: n.url("/loop"), 703),
    ("plain-to-tls-port", lambda n, p: n.url("/pkg/update.pkg").replace(
        str(n.port["http"]), str(n.port["https"])), 703),  # nginx answers 400
    ("malformed-status", lambda n, p: p.url("/malformed/status"), 703),
    ("malformed-header", lambda n, p: p.url("/malformed/header"), 703),
    ("malformed-length", lambda n, p: p.url("/malformed/length"), 703),
    # 704: the bytes stop
    ("stall-mid-body", lambda n, p: p.url("/stall/update.pkg"), 704),
    ("silent", lambda n, p: p.url("/silent"), 704),
    ("cut-mid-body", lambda n, p: p.url("/cut/update.pkg"), 704),
    ("cut-mid-chunk", lambda n, p: p.url("/cutchunk/update.pkg"), 704),
    # 705: a URL of a known scheme that does not parse
    ("port-0", lambda n, p: "http://127.0.0.1:0/pkg/update.pkg", 705),
    ("port-70000", lambda n, p: "http://127.0.0.1:70000/pkg/update.pkg", 705),
    ("empty-host", lambda n, p: "http://:80/x", 705),
    ("space", lambda n, p: n.url("/pkg/update pkg"), 705),
    # 706: not there
    ("404", lambda n, p: n.url("/pkg/missing.pkg"), 706),
    ("410", lambda n, p: n.url("/gone"), 706),
    # 708: does not fit the slot
    ("too-large-length", lambda n, p: n.url("/pkg/toolarge.bin"), 708),
    ("too-large-chunked", lambda n, p: n.url("/chunked/toolarge.bin"), 708),
    # 710: not a valid package
    ("flipped-byte", lambda n, p: n.url("/pkg/corrupt.pkg"), 710),
    ("truncated", lambda n, p: n.url("/pkg/truncated.pkg"), 710),
    ("random-bytes", lambda n, p: n.url("/pkg/random.bin"), 710),
    ("flipped-byte-chunked", lambda n, p: n.url("/chunked/corrupt.pkg"), 710),
]


@pytest.mark.parametrize("how, err", [(c[1], c[2]) for c in CODES], ids=[c[0] for c in CODES])
def test_httpend_code(make_modem, nginx, pyhttp, how, err):
    m = booted(make_modem)
    t0 = time.monotonic()
    pcts = fetch(m, how(nginx, pyhttp), err)
    if err == 704 and pyhttp.stalled.is_set():
        assert time.monotonic() - t0 >= 0.9  # the fast profile's 1000 ms, not sooner
    if err == 708:
        assert pcts == [], pcts  # found before a byte past the slot is written
    idle_on_old_firmware(m)


@pytest.mark.parametrize("server, ca, err", [
    ("https", "other_ca", 702),     # signed by another CA
    ("wrongname", "ca", 702),       # the CA's, but for wrong.example
    ("mtls", "ca", 702),            # no client certificate
])
def test_tls_failures_are_702(make_modem, nginx, certs, server, ca, err):
    m = booted(make_modem)
    upload(m, "/datatx/fota_cacert.pem", certs.pem(getattr(certs, ca)[0]))
    fetch(m, nginx.url("/pkg/update.pkg", server), err)
    idle_on_old_firmware(m)


@pytest.mark.parametrize("cfun", [4, 0])
def test_not_registered_is_702_then_radio_on_works(make_modem, nginx, cfun):
    m = booted(make_modem)
    assert m.cmd(f"AT+CFUN={cfun}") == b"\r\nOK\r\n"
    fetch(m, nginx.url("/pkg/update.pkg"), 702)
    assert m.read_for(QUIET) == b""
    assert m.cmd("AT+CFUN=1").endswith(b"OK\r\n")
    end = time.monotonic() + DEADLINE
    while b"+CEREG: 0,1" not in m.cmd("AT+CEREG?"):
        assert time.monotonic() < end, "not registered again"
    m.read_for(QUIET)  # whatever the radio's return printed
    m.cmd("AT+QFOTADL=3,0")
    fetch(m, nginx.url("/pkg/update.pkg"))


@pytest.mark.parametrize("line", ["AT+CFUN=4", "AT+CFUN=0", "AT+CGATT=0"])
def test_radio_off_during_a_download_ends_it_with_702(make_modem, nginx, pyhttp, line):
    m = booted(make_modem)
    assert m.cmd(f'AT+QFOTADL="{pyhttp.url("/stall/big.pkg")}"') == b"\r\nOK\r\n"
    m.read_until(b'%\r\n')  # a DOWNLOADING: bytes arrive, then the server holds
    assert answer(m, line) == b"\r\nOK\r\n"
    raw = m._take(HTTPEND, DEADLINE, "HTTPEND")
    assert raw.endswith(b'"HTTPEND",702\r\n'), raw  # not the stall's 704
    idle_on_old_firmware(m)


@pytest.mark.parametrize("apn, err", [("other", 702), ("internet", 0)])
def test_fota_apn_refused_by_the_network_is_702(make_modem, nginx, apn, err):
    m = booted(make_modem, "--network-apns", "internet")
    assert m.cmd(f'AT+QCFGEXT="fota_apn",0,"{apn}"') == b"\r\nOK\r\n"
    m.cmd("AT+QFOTADL=3,0")
    fetch(m, nginx.url("/pkg/update.pkg"), err)


# ---- command time -------------------------------------------------------------

@pytest.mark.parametrize("args", [
    '""',
    '"http://127.0.0.1/' + "a" * (701 - len("http://127.0.0.1/")) + '"',  # 701 bytes
    '"ftp://x"',
    '"coapx://127.0.0.1/x"',
    '"http://127.0.0.1/x",1',
    '"https://127.0.0.1/x",5,6',
], ids=["empty", "701-bytes", "ftp", "unknown-scheme", "extra-arg", "two-extra-args"])
def test_590_at_command_time_without_urcs(modem, args):
    modem.cmd("ATE0")
    assert modem.cmd(f"AT+QFOTADL={args}") == b"\r\n+CME ERROR: 590\r\n", args
    assert modem.read_for(QUIET) == b""
    assert modem.cmd("AT") == b"\r\nOK\r\n"


def test_a_700_byte_url_is_accepted(make_modem, nginx):
    base = nginx.url("/pkg/")
    url = base + "a" * (700 - len(base))
    assert len(url) == 700
    m = booted(make_modem)
    fetch(m, url, 706)


PROGRESS_URC = re.compile(rb'\r\n\+QIND: "FOTA",("HTTPSTART"|"DOWNLOADING",\d+%)\r\n')


def answer(port, line):
    """The answer to @line without the HTTPSTART and DOWNLOADING URCs the
    module prints on every port meanwhile (as a host's URC handler takes
    them out)."""
    return PROGRESS_URC.sub(b"", port.cmd(line))


def test_591_while_a_download_runs_and_both_ports_answer(make_modem, nginx, pyhttp, tmp_path):
    usb_path = tmp_path / "usb.tty"
    m = booted(make_modem, "--usb", str(usb_path))
    usb = Modem(tmp_path)
    usb.tty = usb_path
    usb.open()
    assert usb.cmd("ATE0").endswith(b"OK\r\n")
    assert m.cmd(f'AT+QFOTADL="{pyhttp.url("/stall/big.pkg")}"') == b"\r\nOK\r\n"
    m.read_until(b'"HTTPSTART"\r\n')
    assert answer(m, "AT") == b"\r\nOK\r\n"
    assert answer(usb, "AT") == b"\r\nOK\r\n"
    assert answer(usb, "AT+QGMR") == f"\r\n{OLD}\r\n\r\nOK\r\n".encode()
    for line in [f'AT+QFOTADL="{nginx.url("/pkg/update.pkg")}"', "AT+QFOTADL=1",
                 'AT+QFOTADL="COM:",1000']:
        assert answer(m, line) == b"\r\n+CME ERROR: 591\r\n", line
    assert answer(usb, f'AT+QFOTADL="{nginx.url("/pkg/update.pkg")}"') == \
        b"\r\n+CME ERROR: 591\r\n"
    assert answer(m, "AT+CMEE=2") == b"\r\nOK\r\n"
    assert answer(m, "AT+QFOTADL=1").startswith(b"\r\n+CME ERROR: ")
    # the stall ends it; the job is free again
    raw = m._take(HTTPEND, DEADLINE, "HTTPEND")
    assert raw.endswith(b'"HTTPEND",704\r\n'), raw
    usb.close()
    assert m.cmd("AT+QFOTADL=3,0") == b"\r\nOK\r\n"
    fetch(m, nginx.url("/pkg/update.pkg"))


def test_retry_after_a_failure_succeeds(make_modem, nginx, packages):
    m = booted(make_modem)
    fetch(m, nginx.url("/pkg/missing.pkg"), 706)
    fetch(m, f"http://127.0.0.1:{free_port()}/pkg/update.pkg", 702)
    fetch(m, nginx.url("/pkg/corrupt.pkg"), 710)
    idle_on_old_firmware(m)
    fetch(m, nginx.url("/pkg/update.pkg"))
    check_cycle(run_update(m, start=False), 0)
    updated(m, info(packages.path("update.pkg")))


def test_kill_9_during_a_download_keeps_the_old_firmware(make_modem, nginx, pyhttp, packages,
                                                         tmp_path):
    m = booted(make_modem)
    assert m.cmd(f'AT+QFOTADL="{pyhttp.url("/stall/big.pkg")}"') == b"\r\nOK\r\n"
    m.read_until(b'"DOWNLOADING",')  # bytes are arriving
    m.kill9()
    m = Modem(tmp_path).start()
    m.wait_boot()
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{OLD}\r\n\r\nOK\r\n".encode()
    assert m.read_for(QUIET) == b""  # the cut download starts nothing
    mt = re.fullmatch(rb"\r\n\+QFOTADL: 4,(\d+)\r\n\r\nOK\r\n", m.cmd("AT+QFOTADL=4"))
    assert mt, "no size"
    kept = int(mt.group(1))
    assert kept < packages.size("big.pkg")
    # what the slot holds is at most a part: no package (505) or a
    # truncated one (506, as test_update's corrupt packages)
    urcs = run_update(m)
    check_cycle(urcs[1:], 505 if kept == 0 else 506)
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{OLD}\r\n\r\nOK\r\n".encode()
    fetch(m, nginx.url("/pkg/update.pkg"))  # the job is idle: a new download works
    check_cycle(run_update(m, start=False), 0)
    updated(m, info(packages.path("update.pkg")))
