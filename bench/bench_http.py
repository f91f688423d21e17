#!/usr/bin/python3
"""HTTP(S) download throughput: dfota-sim's AT+QFOTADL=<URL> of a 7 MB
package from nginx on loopback (the e2e peers, tests/e2e/peers.py), timed
from the command to HTTPEND,0 (fast profile, trigger mode 0: no update
runs), against `curl -s -o /dev/null` of the same URL in the same run, over
HTTP and HTTPS (both verifying the server with the test CA). Prints MB/s per
run, then the ratio dfota-sim / curl: median of paired runs and best of
each. Then the realistic profile's paced link: a 370 KB package over HTTP,
its rate (bytes over the time from the command to HTTPEND) against the
profile's configured link rate. Asserts nothing; removes what it made.

  /usr/bin/python3 bench/bench_http.py [BUILD_DIR [RUNS]]   (default build, 7)
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build").resolve()
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
os.environ["DFOTA_BUILD_DIR"] = str(BUILD)  # conftest reads it at import
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import peers  # noqa: E402
from conftest import DEADLINE, PACK, Modem, check_runs  # noqa: E402

HTTPEND = re.compile(rb'\+QIND: "FOTA","HTTPEND",(\d+)\r\n')
NAME = "between.pkg"  # 7.25 MB, fits a BG95-M3
PACED = "update.pkg"  # ~370 KB: about 10 s at the realistic profile's rate
PACED_RATE = 300000 / 8  # bytes/s: the realistic profile's link_rate_bps (modem_tables.c)
PACED_RUNS = 2


def modem_run(m, url):
    t0 = time.perf_counter()
    answer = m.cmd(f'AT+QFOTADL="{url}"')
    if answer != b"\r\nOK\r\n":
        raise RuntimeError(f"AT+QFOTADL answered {answer!r}")
    raw = m._take(HTTPEND, 120, "HTTPEND")
    took = time.perf_counter() - t0
    code = int(HTTPEND.search(raw).group(1))
    if code != 0:
        raise RuntimeError(f"HTTPEND,{code}")
    return took


def curl_run(url, ca):
    t0 = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", "/dev/null", "--cacert", str(ca), url], check=True)
    return time.perf_counter() - t0


def upload(m, name, data):
    assert m.cmd(f'AT+QFUPL="{name}",{len(data)}') == b"\r\nCONNECT\r\n"
    m.write(data)
    m.read_until(b"\r\nOK\r\n")


def main():
    with tempfile.TemporaryDirectory(prefix="bench_http.") as tmp:
        tmp = Path(tmp)
        certs = peers.Certs(tmp / "certs")
        pkgs = peers.Packages(tmp / "www", PACK, names=(NAME, PACED))
        size = pkgs.size(NAME)
        nginx = peers.Nginx(tmp / "nginx", pkgs.dir, certs).start()
        (tmp / "modem").mkdir()
        m = Modem(tmp / "modem")
        try:
            m.start()
            m.wait_boot()
            m.cmd("ATE0")
            upload(m, "/datatx/fota_cacert.pem", certs.pem(certs.ca[0]))
            assert m.cmd("AT+QFOTADL=3,0") == b"\r\nOK\r\n"
            print(f"package {size} bytes ({size / 1e6:.2f} MB), {RUNS} paired runs, "
                  f"dfota-sim {BUILD / 'dfota-sim'} --profile fast")
            for server in ("http", "https"):
                url = nginx.url(f"/pkg/{NAME}", server)
                modem_run(m, url)  # warm-up: page cache, TLS session setup paths
                curl_run(url, certs.ca[0])
                pairs = []
                for i in range(RUNS):
                    if i % 2:  # alternate who goes first
                        c = curl_run(url, certs.ca[0])
                        d = modem_run(m, url)
                    else:
                        d = modem_run(m, url)
                        c = curl_run(url, certs.ca[0])
                    pairs.append((size / d / 1e6, size / c / 1e6))
                print(f"\n{server}: MB/s dfota-sim / curl")
                for dm, cm in pairs:
                    print(f"  {dm:8.1f} {cm:8.1f}  {dm / cm:5.2f}")
                med = statistics.median(dm / cm for dm, cm in pairs)
                best = max(p[0] for p in pairs) / max(p[1] for p in pairs)
                print(f"  median dfota-sim {statistics.median(p[0] for p in pairs):.1f} MB/s, "
                      f"curl {statistics.median(p[1] for p in pairs):.1f} MB/s")
                print(f"  ratio dfota-sim / curl: median of pairs {med:.2f}, best of each {best:.2f}")
            m.stop()
            paced(tmp, nginx, pkgs)
        finally:
            problems = check_runs([m]) if m.proc else []
            nginx.stop()
            for p in problems:
                print("bench_http:", p, file=sys.stderr)
    return 0


def paced(tmp, nginx, pkgs):
    """The realistic profile's pacing: the rate a download reaches against
    the rate the profile sets (the time includes its connection set-up and
    100 ms of latency: about 1 % of a 10 s run)."""
    (tmp / "paced").mkdir()
    m = Modem(tmp / "paced")
    try:
        m.start(extra=("--profile", "realistic"))
        m.wait_boot()
        m.cmd("ATE0")
        assert m.cmd("AT+QFOTADL=3,0") == b"\r\nOK\r\n"
        size = pkgs.size(PACED)
        url = nginx.url(f"/pkg/{PACED}")
        print(f"\npaced (--profile realistic, link {PACED_RATE / 1e3:.1f} kB/s): "
              f"{size} bytes, {PACED_RUNS} runs")
        for _ in range(PACED_RUNS):
            rate = size / modem_run(m, url)
            print(f"  {rate / 1e3:8.2f} kB/s  {rate / PACED_RATE:5.3f} of the configured rate")
    finally:
        m.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # noqa: BLE001 -- a benchmark reports, it does not trace
        print(f"bench_http: {exc}", file=sys.stderr)
        sys.exit(1)
