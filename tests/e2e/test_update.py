"""The reset-and-update cycle of app note 2.2.3 as a host sees it: packages
made by the real dfota-pack, the NAND slot commands, every <update_err>,
trigger mode, and power cuts (kill -9) during the update."""
import hashlib
import json
import random
import re
import subprocess
import time

import pytest

from conftest import BOOT_URCS, PACK, Modem

OLD = "BG95M3LAR02A03_01.012.01.012"
NEW = "BG95M3LAR02A04_01.200.01.200"


# An update slow enough for a test to kill the process inside UPDATING: the
# standard profile's apply speed (2 s of module time per MB), 20 times faster.
SLOW = ("--profile", "standard", "--time-scale", "0.05")


def pack(tmp_path, src, dst, name="update.pkg"):
    out = tmp_path / name
    subprocess.run([str(PACK), "build", "--from", src, "--to", dst, "-o", str(out)], check=True)
    return out


def info(pkg):
    return json.loads(subprocess.run([str(PACK), "info", "--json", str(pkg)], check=True,
                                     capture_output=True).stdout)


def lines(raw):
    return [l.decode() for l in raw.split(b"\r\n") if l]


def run_update(m, start=True):
    """Starts the update (unless already started) and returns the URC lines
    up to the end of the reboot that follows it."""
    raw = b""
    if start:
        raw = m.cmd("AT+QFOTADL=1")
        assert raw.endswith(b"\r\nOK\r\n")
    raw += m.read_until(b'"END",', deadline=60)
    raw += m.wait_boot()
    return lines(raw)


def check_cycle(urcs, err):
    """RESETTING (when printed), START, UPDATING rising to 100, END,err, boot URCs."""
    fota = [l for l in urcs if l.startswith('+QIND: "FOTA"')]
    i = 0
    if fota[0] == '+QIND: "FOTA","RESETTING"':
        i = 1
    assert fota[i] == '+QIND: "FOTA","START"', urcs
    pcts = [int(re.fullmatch(r'\+QIND: "FOTA","UPDATING",(\d+)%', l).group(1))
            for l in fota[i + 1:-1]]
    if err == 0:  # every percent up to 100 (from 1, or from where a resume goes on)
        assert pcts and pcts == list(range(pcts[0], 101)), pcts
        if i == 1:
            assert pcts[0] == 1, pcts
    assert fota[-1] == f'+QIND: "FOTA","END",{err}', urcs
    end = urcs.index(fota[-1])
    assert [l.encode() for l in urcs[end + 1:]] == BOOT_URCS
    return pcts


def fw_sha(m):
    return hashlib.sha256((m.state / "fw" / "current").read_bytes()).hexdigest()


def test_update_from_preloaded_package_reports_new_version(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    m.cmd("ATE0")
    size = pkg.stat().st_size
    assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{size}\r\n\r\nOK\r\n".encode()
    urcs = run_update(m)
    assert urcs[:2] == ["OK", '+QIND: "FOTA","RESETTING"']
    check_cycle(urcs[1:], 0)
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{NEW}\r\n\r\nOK\r\n".encode()
    assert m.cmd("AT+CGMR") == b"\r\nBG95M3LAR02A04\r\n\r\nOK\r\n"
    assert b"Revision: BG95M3LAR02A04" in m.cmd("ATI")
    assert fw_sha(m) == info(pkg)["dst_sha256"]
    assert m.cmd("AT+QFOTADL=4") == b"\r\n+QFOTADL: 4,0\r\n\r\nOK\r\n"  # used up


def test_no_package_ends_505_and_keeps_firmware(modem):
    modem.cmd("ATE0")
    check_cycle(run_update(modem)[1:], 505)
    modem.cmd("ATE0")
    assert modem.cmd("AT+QGMR") == f"\r\n{OLD}\r\n\r\nOK\r\n".encode()


@pytest.mark.parametrize("damage", ["garbage", "bad_header", "bad_frame"])
def test_corrupt_package_ends_506_and_keeps_firmware(make_modem, tmp_path, damage):
    pkg = pack(tmp_path, OLD, NEW)
    data = bytearray(pkg.read_bytes())
    if damage == "garbage":
        data = bytearray(b"not a package at all" * 100)
    elif damage == "bad_header":
        data[40] ^= 0xFF
    else:
        data[-100] ^= 0xFF
    bad = tmp_path / "bad.pkg"
    bad.write_bytes(bytes(data))
    m = make_modem("--preload-package", str(bad))
    m.wait_boot()
    before = fw_sha(m)
    m.cmd("ATE0")
    check_cycle(run_update(m)[1:], 506)
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{OLD}\r\n\r\nOK\r\n".encode()
    assert fw_sha(m) == before


def test_package_for_other_firmware_ends_511(make_modem, tmp_path):
    pkg = pack(tmp_path, "BG95M3LAR02A02_01.001.01.001", NEW)
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    m.cmd("ATE0")
    check_cycle(run_update(m)[1:], 511)
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{OLD}\r\n\r\nOK\r\n".encode()


def test_opaque_package_needs_opaque_target(make_modem, tmp_path):
    vendor = tmp_path / "vendor.bin"
    vendor.write_bytes(bytes(range(256)) * 400)
    m = make_modem("--preload-package", str(vendor))
    m.wait_boot()
    m.cmd("ATE0")
    check_cycle(run_update(m)[1:], 506)
    m.stop()
    m2 = Modem(tmp_path, ["--opaque-target", "BG95M3LAR02A05_01.300.01.300"]).start()
    try:
        m2.wait_boot()
        m2.cmd("ATE0")
        check_cycle(run_update(m2)[1:], 0)
        m2.cmd("ATE0")
        assert m2.cmd("AT+QGMR") == b"\r\nBG95M3LAR02A05_01.300.01.300\r\n\r\nOK\r\n"
    finally:
        m2.stop()


def test_trigger_mode_is_volatile_and_checked(modem):
    modem.cmd("ATE0")
    assert modem.cmd("AT+QFOTADL=3") == b"\r\n+QFOTADL: 3,1\r\n\r\nOK\r\n"
    assert modem.cmd("AT+QFOTADL=3,0") == b"\r\nOK\r\n"
    assert modem.cmd("AT+QFOTADL=3") == b"\r\n+QFOTADL: 3,0\r\n\r\nOK\r\n"
    for bad in ["AT+QFOTADL=2", "AT+QFOTADL=3,2", "AT+QFOTADL=6", "AT+QFOTADL=1,1",
                "AT+QFOTADL=4,1", "AT+QFOTADL=3,1,1", "AT+QFOTADL=\"COM:\",0",
                "AT+QFOTADL=4,", "AT+QFOTADL=1,",
                "AT+QFOTADL=\"COM:\",7471105", "AT+QFOTADL=\"ftp://x/y\""]:
        assert modem.cmd(bad) == b"\r\n+CME ERROR: 590\r\n", bad
    modem.cmd("AT+CFUN=1,1")
    modem.wait_boot()
    modem.cmd("ATE0")
    assert modem.cmd("AT+QFOTADL=3") == b"\r\n+QFOTADL: 3,1\r\n\r\nOK\r\n"


def test_slot_delete_and_busy_job_gives_591(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    m.cmd("ATE0")
    assert m.cmd("AT+QFOTADL=5") == b"\r\nOK\r\n"
    assert m.cmd("AT+QFOTADL=4") == b"\r\n+QFOTADL: 4,0\r\n\r\nOK\r\n"
    assert m.cmd("AT+QFOTADL=5") == b"\r\nOK\r\n"  # an empty slot deletes fine
    # between OK and the reset, the job runs: the family answers 591
    m.write(b"AT+QFOTADL=1;+QFOTADL=4\r")
    assert m.read_until(b"591\r\n") == b"\r\n+CME ERROR: 591\r\n"


def test_usb_port_vanishes_during_dfota_mode(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    usb = tmp_path / "usb.tty"
    m = make_modem("--preload-package", str(pkg), "--usb", str(usb))
    m.wait_boot()
    assert usb.is_symlink()
    m.cmd("AT+QFOTADL=1")
    m.read_until(b'"START"')
    assert not usb.exists()
    m.read_until(b'"END",0')
    m.wait_boot()
    assert usb.is_symlink()


PROGRESS = re.compile(rb'"UPDATING",(\d+)%\r\n|"END",(\d+)\r\n|SMS DONE\r\n')


def finish_and_check(m, tmp_path, want_sha):
    """Lets the update (if any is left) run out; the module must end up on
    the new firmware with the package's target image."""
    m.read_until(b"SMS DONE\r\n", deadline=60)
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{NEW}\r\n\r\nOK\r\n".encode()
    assert fw_sha(m) == want_sha


def test_kill_9_at_20_points_of_updating_resumes_with_the_right_image(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    want = info(pkg)["dst_sha256"]
    points = sorted(random.Random(1234).sample(range(1, 100), 20))
    m = make_modem("--preload-package", str(pkg), *SLOW)
    m.wait_boot()
    m.cmd("AT+QFOTADL=1")
    kills = 0
    for point in points:
        while True:
            mt = PROGRESS.search(m._take(PROGRESS, 60, "progress"))
            if mt.group(1) is None or int(mt.group(1)) >= point:
                break
        if mt.group(1) is None:
            break  # the update got past the remaining points before we could kill
        m.kill9()
        kills += 1
        m = Modem(tmp_path, SLOW).start()  # same state dir: boots into DFOTA mode
    assert kills >= 10, f"only {kills} kills landed in UPDATING"
    finish_and_check(m, tmp_path, want)
    m.stop()


@pytest.mark.parametrize("stage", [b'"RESETTING"', b'"START"', b'"END",0'])
def test_kill_9_at_a_stage_boundary_still_ends_updated(make_modem, tmp_path, stage):
    pkg = pack(tmp_path, OLD, NEW)
    want = info(pkg)["dst_sha256"]
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    m.cmd("AT+QFOTADL=1")
    m.read_until(stage)
    m.kill9()
    m = Modem(tmp_path).start()
    finish_and_check(m, tmp_path, want)
    m.stop()


def test_resume_continues_rather_than_restarting(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem("--preload-package", str(pkg), *SLOW)
    m.wait_boot()
    m.cmd("AT+QFOTADL=1")
    m.read_until(b'"UPDATING",50%')
    m.kill9()
    m = Modem(tmp_path, SLOW).start()
    urcs = lines(m.read_until(b'"END",0') + m.wait_boot())
    pcts = check_cycle(urcs, 0)
    assert pcts[0] > 50, pcts  # it went on from the journal
    m.stop()


def test_dfota_urcs_go_out_paced_at_the_saved_ipr_rate(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    m.cmd("ATE0")
    assert m.cmd("AT+IPR=9600;&W") == b"\r\nOK\r\n"
    m.close()
    m.open(baudrate=9600)
    m.cmd("AT+QFOTADL=1")
    m.read_until(b'"RESETTING"\r\n')
    raw = m.read_until(b'"START"\r\n')
    t0 = time.monotonic()
    raw = m.read_until(b'"END",0\r\n', deadline=60)
    took = time.monotonic() - t0
    assert raw.endswith(b'\r\n+QIND: "FOTA","END",0\r\n')
    assert b'"UPDATING",100%' in raw
    # a paced line cannot deliver faster than 10 bits per byte at 9600 bps
    # (a lower bound only: a slow machine makes it longer, never shorter)
    assert took >= 0.9 * len(raw) * 10 / 9600, (took, len(raw))
    m.wait_boot()


def test_host_at_another_speed_gets_garbled_dfota_urcs(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    m.cmd("ATE0")
    # saved: DFOTA mode and the reboot after it report at 921600; the UART
    # switches at once, so the host follows for the unsaved way back
    assert m.cmd("AT+IPR=921600;&W") == b"\r\nOK\r\n"
    m.ser.baudrate = 921600
    assert m.cmd("AT+IPR=115200") == b"\r\nOK\r\n"
    m.ser.baudrate = 115200  # the host stays at 115200 from here
    assert m.cmd("AT+QFOTADL=1") == b"\r\nOK\r\n"
    m.read_until(b'"RESETTING"\r\n')
    end = time.monotonic() + 60
    while "output is garbled" not in m.log():
        assert time.monotonic() < end, m.log()
    dfota = m.pending + m.ser.read(65536)
    assert b'"FOTA","START"' not in dfota and b'"END",0' not in dfota
    assert len(dfota) > 0  # something arrived, as a mismatched UART delivers
    # the module is back at the saved rate: a host that follows it is answered
    m.ser.baudrate = 921600
    m.pending = b""
    end = time.monotonic() + 60
    while not m.read_for(0.2).endswith(b"\r\nOK\r\n"):
        assert time.monotonic() < end, m.log()
        m.write(b"AT\r")
    assert m.cmd("AT+QGMR") == f"\r\n{NEW}\r\n\r\nOK\r\n".encode()


def test_unreadable_running_image_ends_512_and_keeps_the_version(make_modem, tmp_path):
    pkg = pack(tmp_path, OLD, NEW)
    m = make_modem("--preload-package", str(pkg))
    m.wait_boot()
    (m.state / "fw" / "current").unlink()  # the flash under the module fails
    m.cmd("ATE0")
    check_cycle(run_update(m)[1:], 512)
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{OLD}\r\n\r\nOK\r\n".encode()
    assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{pkg.stat().st_size}\r\n\r\nOK\r\n".encode()
