"""The download tests' peers checked with curl, no modem: each location of
nginx and of the Python server gives what test_http.py relies on (a length
or chunks, the status, the redirect hops, the TLS outcome, the cut or the
stall). When one of these fails, an HTTPEND code in test_http.py means
nothing."""
import subprocess
import time

import pytest


def curl(url, *args, out=None):
    """(curl's exit code, the response header lines of every hop, the body)."""
    cmd = ["curl", "-sS", "-v", "--max-time", "10", *args, url]
    r = subprocess.run(cmd, capture_output=True)
    heads = [l[2:].strip().lower() for l in r.stderr.decode(errors="replace").splitlines()
             if l.startswith("< ")]
    return r.returncode, heads, r.stdout


def status_lines(heads):
    return [h for h in heads if h.startswith("http/")]


def test_static_file_has_content_length_and_the_bytes(nginx, packages):
    rc, heads, body = curl(nginx.url("/pkg/update.pkg"))
    assert rc == 0
    assert status_lines(heads) == ["http/1.1 200 ok"]
    assert f"content-length: {packages.size('update.pkg')}" in heads
    assert body == packages.data("update.pkg")


@pytest.mark.parametrize("name", ["update.pkg", "big.pkg"])
def test_chunked_location_has_no_length_and_the_same_bytes(nginx, packages, name):
    rc, heads, body = curl(nginx.url(f"/chunked/{name}"))
    assert rc == 0
    assert "transfer-encoding: chunked" in heads
    assert not [h for h in heads if h.startswith("content-length")]
    assert body == packages.data(name)


@pytest.mark.parametrize("path, status", [("/pkg/missing.pkg", 404), ("/gone", 410),
                                          ("/error", 500), ("/loop", 302)])
def test_status_locations(nginx, path, status):
    rc, heads, _ = curl(nginx.url(path))
    assert rc == 0
    assert status_lines(heads)[0].startswith(f"http/1.1 {status} ")


def test_redirect_chain_is_three_hops_with_one_relative_location(nginx, packages):
    rc, heads, body = curl(nginx.url("/r/3"), "-L")
    assert rc == 0
    assert [s.split()[1] for s in status_lines(heads)] == ["301", "302", "307", "200"]
    locations = [h.split(": ", 1)[1] for h in heads if h.startswith("location:")]
    assert locations == [nginx.url("/r/2"), "/r/1", nginx.url("/pkg/update.pkg")]
    assert body == packages.data("update.pkg")


@pytest.mark.parametrize("n, rc", [(5, 0), (6, 47)])
def test_redirect_counts(nginx, n, rc):
    got, heads, _ = curl(nginx.url(f"/redirect/{n}"), "-L", "--max-redirs", "5")
    assert got == rc
    assert len([s for s in status_lines(heads) if s.split()[1].startswith("30")]) == min(n, 6)


def test_loop_redirects_for_ever(nginx):
    rc, heads, _ = curl(nginx.url("/loop"), "-L", "--max-redirs", "20")
    assert rc == 47 and len(status_lines(heads)) == 21


def test_slow_location_is_slow_but_never_silent_for_a_second(nginx, packages):
    t0 = time.monotonic()
    rc, _, body = curl(nginx.url("/slow/update.pkg"), "--speed-time", "1", "--speed-limit", "1")
    assert rc == 0 and body == packages.data("update.pkg")
    assert time.monotonic() - t0 > 0.5  # 64 KiB at once, then 256 KiB/s


@pytest.mark.parametrize("server, host, ca, rc", [
    ("https", "127.0.0.1", "ca", 0),
    ("https", "localhost", "ca", 0),
    ("https", "127.0.0.1", "other_ca", 60),   # not signed by that CA
    ("wrongname", "127.0.0.1", "ca", 60),     # signed, but for wrong.example
    ("wrongname", "127.0.0.1", None, 0),      # no verification: any name
    ("mtls", "127.0.0.1", "ca", 56),          # no client certificate: the handshake fails
])
def test_tls_servers(nginx, certs, packages, server, host, ca, rc):
    args = ["--cacert", str(getattr(certs, ca)[0])] if ca else ["-k"]
    got, _, body = curl(nginx.url("/pkg/update.pkg", server, host=host), *args)
    assert got == rc
    if rc == 0:
        assert body == packages.data("update.pkg")


@pytest.mark.parametrize("tls", [["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3"]])
def test_mutual_tls_with_the_client_certificate_over_tls_1_2_and_1_3(nginx, certs, packages, tls):
    rc, _, body = curl(nginx.url("/pkg/update.pkg", "mtls"), "--cacert", str(certs.ca[0]),
                       "--cert", str(certs.client[0]), "--key", str(certs.client[1]), *tls)
    assert rc == 0 and body == packages.data("update.pkg")


def test_mutual_tls_without_a_client_certificate_fails_the_tls_1_2_handshake(nginx, certs):
    rc, heads, _ = curl(nginx.url("/pkg/update.pkg", "mtls"), "--cacert", str(certs.ca[0]),
                        "--tlsv1.2", "--tls-max", "1.2")
    assert rc == 35 and not status_lines(heads)


def test_access_log_records_the_requests(nginx):
    curl(nginx.url("/gone?peers-log-check"))
    assert (nginx.port["http"], "GET /gone?peers-log-check HTTP/1.1", 410,
            f"127.0.0.1:{nginx.port['http']}") in nginx.requests()


def test_python_ok_control(pyhttp, packages):
    rc, heads, body = curl(pyhttp.url("/ok/update.pkg"))
    assert rc == 0 and body == packages.data("update.pkg")


@pytest.mark.parametrize("path, chunked", [("/cut/update.pkg", False),
                                           ("/cutchunk/update.pkg", True)])
def test_python_cuts_the_body(pyhttp, packages, path, chunked):
    rc, heads, body = curl(pyhttp.url(path))
    assert rc == 18  # transfer closed with outstanding data
    assert ("transfer-encoding: chunked" in heads) == chunked
    data = packages.data("update.pkg")
    assert 0 < len(body) < len(data) and data.startswith(body)


@pytest.mark.parametrize("what", ["status", "header", "length"])
def test_python_malformed_answers(pyhttp, what):
    rc, heads, _ = curl(pyhttp.url(f"/malformed/{what}"))
    if what == "status":
        assert rc != 0 and not heads
    elif what == "header":
        assert rc != 0
    else:
        assert "content-length: 12abc" in heads  # curl is lenient; the RFC is not


def test_python_stall_sends_half_then_nothing_until_the_client_goes(pyhttp, packages):
    t0 = time.monotonic()
    rc, heads, body = curl(pyhttp.url("/stall/update.pkg"), "--max-time", "1.5")
    assert rc == 28  # curl's own timeout: the server held the connection
    assert time.monotonic() - t0 >= 1.4
    assert pyhttp.stalled.is_set()
    assert body == packages.data("update.pkg")[:packages.size("update.pkg") // 2]


def test_python_silent_answers_nothing(pyhttp):
    rc, heads, body = curl(pyhttp.url("/silent"), "--max-time", "0.5")
    assert rc == 28 and not heads and body == b""


def test_packages_are_what_the_tests_say(packages):
    import peers
    assert peers.SLOT_M1 < packages.size("between.pkg") <= peers.SLOT_M3
    assert packages.size("toolarge.bin") == peers.SLOT_M3 + 1
    assert 2_500_000 < packages.size("big.pkg") < 3_500_000
    good, bad = packages.data("update.pkg"), packages.data("corrupt.pkg")
    assert len(good) == len(bad) and sum(a != b for a, b in zip(good, bad)) == 1
    for name, ok in [("update.pkg", True), ("big.pkg", True), ("between.pkg", True),
                     ("corrupt.pkg", False), ("truncated.pkg", False), ("random.bin", False)]:
        r = subprocess.run([str(packages.pack), "verify", str(packages.path(name))],
                           capture_output=True)
        assert (r.returncode == 0) == ok, name
