"""The package pipeline as a host sees it (issue 9): the DFOTA job owns the
slot, an upload that brings no byte leaves the old package alone, a file
planted in the slot's place is no package, and the loop thread never waits
on a disk (strace of AT+QFUPL uploads, a whole COM upload and update)."""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import DEADLINE
from test_update import NEW, OLD, check_cycle, info, lines, pack, run_update


def upload(m, data: bytes, timeout=5):
    assert m.cmd(f'AT+QFOTADL="COM:",{len(data)},{timeout}').endswith(b"CONNECT\r\n")
    m.write(data)
    return m.read_until(b"\r\nOK\r\n")


def test_upload_with_no_byte_keeps_the_package_already_in_the_slot(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    m.cmd("ATE0")
    size = pkg.stat().st_size
    # nothing sent: the timeout ends data mode; <upload_size> is what came
    raw = m.cmd('AT+QFOTADL="COM:",1000,1')
    assert raw.endswith(b"CONNECT\r\n")
    assert m.read_until(b"\r\nOK\r\n", deadline=DEADLINE) == b"\r\n+QFOTADL: 0,0\r\n\r\nOK\r\n"
    assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{size}\r\n\r\nOK\r\n".encode()
    # and it still updates
    urcs = run_update(m)
    check_cycle(urcs, 0)
    assert NEW.encode() in m.cmd("AT+QGMR")


def test_first_byte_of_an_upload_replaces_the_old_package(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    m.cmd("ATE0")
    m.cmd("AT+QFOTADL=3,0")
    assert m.cmd('AT+QFOTADL="COM:",1000,1').endswith(b"CONNECT\r\n")
    m.write(b"x")
    assert m.read_until(b"\r\nOK\r\n") == b"\r\n+QFOTADL: 1,7800\r\n\r\nOK\r\n"
    assert m.cmd("AT+QFOTADL=4") == b"\r\n+QFOTADL: 4,1\r\n\r\nOK\r\n"


def test_a_symlink_planted_as_the_slot_is_no_package(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    m.kill9()
    m.args = []  # no second preload
    slot = m.state / "slot" / "package"
    outside = tmp_path / "outside.pkg"
    shutil.move(slot, outside)
    os.symlink(outside, slot)
    m.start()
    m.wait_boot()
    m.cmd("ATE0")
    assert m.cmd("AT+QFOTADL=4") == b"\r\n+QFOTADL: 4,0\r\n\r\nOK\r\n"
    urcs = run_update(m)
    assert urcs[-7] == '+QIND: "FOTA","END",505', urcs
    assert outside.read_bytes() == pkg.read_bytes()  # never touched through the link


# What the loop thread must never do to a file of the state dir: each of
# these waits on the disk (or, for write, fills the page cache on the
# loop's time).
DURABLE = re.compile(r"^(\d+)\s+(fsync|fdatasync|sync_file_range|rename|renameat2?|unlink|unlinkat|"
                     r"write|pwrite64|writev|pwritev2?|ftruncate|fallocate)\(")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_loop_thread_never_waits_on_a_disk_during_uploads_and_update(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem()
    m.wait_boot()
    m.cmd("ATE0")
    pid = m.proc.pid
    out = tmp_path / "strace.txt"
    tracer = subprocess.Popen(["strace", "-f", "-y", "-qq", "-p", str(pid), "-o", str(out),
                               "-e", "trace=%file,%desc"], stderr=subprocess.PIPE)
    # strace has attached once the traced process shows a tracer in /proc
    end = time.monotonic() + DEADLINE
    while "TracerPid:\t0" in open(f"/proc/{pid}/status").read():
        assert time.monotonic() < end and tracer.poll() is None, "strace did not attach"
    try:
        # an EFS file of several buffers, and one that times out with no byte
        cert = bytes((i * 13 + (i >> 10)) & 0xFF for i in range(600 * 1024))
        assert m.cmd(f'AT+QFUPL="UFS:cert.bin",{len(cert)},5').endswith(b"CONNECT\r\n")
        m.write(cert)
        assert m.read_until(b"\r\nOK\r\n").startswith(f"\r\n+QFUPL: {len(cert)},".encode())
        assert m.cmd('AT+QFUPL="UFS:none.bin",10,1').endswith(b"CONNECT\r\n")
        assert m.read_until(b"\r\n+CME ERROR: 421\r\n") == b"\r\n+CME ERROR: 421\r\n"
        report = upload(m, pkg.read_bytes())
        size = pkg.stat().st_size
        assert report.startswith(f"\r\n+QFOTADL: {size},".encode()), report
        urcs = lines(m.read_until(b'"END",', deadline=60) + m.wait_boot())
        check_cycle(urcs, 0)
    finally:
        tracer.terminate()
        tracer.wait(timeout=DEADLINE)
    state = str(m.state.resolve())
    bad = []
    for line in out.read_text(errors="replace").splitlines():
        mt = DURABLE.match(line)
        if not mt or int(mt.group(1)) != pid:
            continue  # a worker thread: that is where this belongs
        if mt.group(2) in ("fsync", "fdatasync", "sync_file_range") or state in line:
            bad.append(line)
    assert not bad, "on the loop thread:\n" + "\n".join(bad[:20])
    # the trace did see the work, on other threads
    text = out.read_text(errors="replace")
    assert re.search(r"fdatasync\(\d+<" + re.escape(state), text), "no fdatasync traced at all"
    assert re.search(r"write\(\d+<" + re.escape(state) + r"/efs/ufs/\.tmp-", text), \
        "no EFS write traced at all"
    assert (m.state / "efs" / "ufs" / "cert.bin").read_bytes() == cert
