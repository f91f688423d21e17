"""Data mode as a host sees it (app note 2.2.2, 2.2.3.3, Quectel's FILE
commands): a package pushed over the port with AT+QFOTADL="COM:", the +++
escape with its guard times, timeouts, and certificates uploaded with
AT+QFUPL, listed with AT+QFLST and deleted with AT+QFDEL. No sleeps: every
wait reads the port against a deadline; read_for() proves silence."""
import os
import re
import time

import serial

from conftest import DEADLINE
from test_update import NEW, OLD, check_cycle, lines, pack, run_update

SLOT_BYTES = 7296 * 1024  # BG95-M3's NAND space for a package (app note 2.2.3.3 note 1)
GUARD = 0.05  # the 1 s +++ guard time at --time-scale 0.05
SCALED = ("--time-scale", "0.05")
REPORT = re.compile(rb"\r\n\+(QFOTADL|QFUPL): (\d+),([0-9a-f]+)\r\n\r\nOK\r\n")


def xor16(data: bytes) -> int:
    """The app note's <check_sum>, written from its text: XOR of 16-bit
    words, the first byte of each pair high, an odd last byte high with a
    zero low byte."""
    total = 0
    for i in range(0, len(data), 2):
        high = data[i]
        low = data[i + 1] if i + 1 < len(data) else 0
        total ^= (high << 8) | low
    return total


def report(m, what):
    """Waits for "+<what>: <size>,<sum>" and OK; returns (size, sum)."""
    raw = m._take(REPORT, DEADLINE, f"the {what} report")
    mt = REPORT.search(raw)
    assert mt.group(1) == what.encode(), raw
    assert raw == mt.group(0), raw  # nothing else came before it
    return int(mt.group(2)), int(mt.group(3), 16)


def booted(make_modem, *args):
    m = make_modem(*args)
    m.wait_boot()
    assert m.cmd("ATE0").endswith(b"OK\r\n")
    return m


def connect(m, line):
    assert m.cmd(line) == b"\r\nCONNECT\r\n", line


def tree(root):
    return sorted(os.path.join(d, f) for d, ds, fs in os.walk(root) for f in ds + fs)


def files_named(root, name):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f == name]


# ---- AT+QFOTADL="COM:" ------------------------------------------------------

def test_com_upload_checksum_matches_and_qfotadl_1_updates(make_modem, tmp_path):
    data = pack(tmp_path, OLD, NEW).read_bytes()
    m = booted(make_modem)
    assert m.cmd("AT+QFOTADL=3,0") == b"\r\nOK\r\n"  # trigger mode 0: wait for AT+QFOTADL=1
    connect(m, f'AT+QFOTADL="COM:",{len(data)}')
    m.write(data)
    assert report(m, "QFOTADL") == (len(data), xor16(data))
    assert m.read_for(0.3) == b""  # no update of its own
    assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{len(data)}\r\n\r\nOK\r\n".encode()
    assert (m.state / "slot" / "package").read_bytes() == data
    check_cycle(run_update(m)[1:], 0)
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{NEW}\r\n\r\nOK\r\n".encode()


def test_com_upload_in_trigger_mode_1_starts_the_update_itself(make_modem, tmp_path):
    data = pack(tmp_path, OLD, NEW).read_bytes()
    m = booted(make_modem)
    connect(m, f'AT+QFOTADL="COM:",{len(data)},10')
    m.write(data)
    assert report(m, "QFOTADL") == (len(data), xor16(data))
    urcs = run_update(m, start=False)
    assert urcs[0] == '+QIND: "FOTA","RESETTING"', urcs
    check_cycle(urcs, 0)
    m.cmd("ATE0")
    assert m.cmd("AT+QGMR") == f"\r\n{NEW}\r\n\r\nOK\r\n".encode()


def test_com_upload_timeout_reports_the_partial_upload_and_keeps_it(make_modem, tmp_path):
    data = pack(tmp_path, OLD, NEW).read_bytes()
    part = data[:12345]  # odd: the last byte counts as a high byte
    m = booted(make_modem)
    connect(m, f'AT+QFOTADL="COM:",{len(data)},1')
    t0 = time.monotonic()
    m.write(part)
    assert report(m, "QFOTADL") == (len(part), xor16(part))
    assert time.monotonic() - t0 >= 0.9  # one second with no byte, not sooner
    assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{len(part)}\r\n\r\nOK\r\n".encode()
    assert m.read_for(0.3) == b""  # a cut package starts nothing, in trigger mode 1 too


def test_com_upload_survives_a_kill_right_after_its_ok(make_modem, tmp_path):
    """The OK means the package is in the slot: a power cut (kill -9) the
    moment it arrives loses nothing, however large the package."""
    data = pack(tmp_path, OLD, NEW).read_bytes()
    data += bytes(range(256)) * ((3 * 1024 * 1024 - len(data)) // 256)  # a few MB, not a whole buffer
    m = booted(make_modem)
    assert m.cmd("AT+QFOTADL=3,0") == b"\r\nOK\r\n"
    connect(m, f'AT+QFOTADL="COM:",{len(data)}')
    m.write(data)
    assert report(m, "QFOTADL") == (len(data), xor16(data))
    m.kill9()
    assert (m.state / "slot" / "package").read_bytes() == data
    m.start()
    m.wait_boot()
    m.cmd("ATE0")
    assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{len(data)}\r\n\r\nOK\r\n".encode()


def test_com_size_zero_or_beyond_the_slot_is_590_without_connect(make_modem):
    m = booted(make_modem)
    for size in (0, -1, SLOT_BYTES + 1):
        assert m.cmd(f'AT+QFOTADL="COM:",{size}') == b"\r\n+CME ERROR: 590\r\n", size
    assert m.cmd('AT+QFOTADL="COM:","x"') == b"\r\n+CME ERROR: 590\r\n"
    assert m.cmd("AT") == b"\r\nOK\r\n"  # still in command mode


# ---- +++ and its guard times (2.2.2) ---------------------------------------

def test_plus_escape_with_guard_times_keeps_what_arrived(make_modem):
    m = booted(make_modem, *SCALED)
    head = bytes(range(256)) * 4 + b"\x01"
    connect(m, 'AT+QFOTADL="COM:",100000,3600')  # escape, not timeout
    m.write(head)
    assert m.read_for(3 * GUARD) == b""  # the guard before; data mode answers nothing
    m.write(b"+++")
    assert m.read_for(GUARD / 5) == b""  # not before the guard after it has passed
    assert report(m, "QFOTADL") == (len(head), xor16(head))
    assert m.cmd("AT+QFOTADL=4") == f"\r\n+QFOTADL: 4,{len(head)}\r\n\r\nOK\r\n".encode()


def test_plus_without_guard_times_is_data(make_modem):
    m = booted(make_modem, *SCALED)
    # +++ amid data (no guard before); +++ after a guard but followed at once
    # by a byte (no guard after); +++ after a guard as the file's last bytes
    # (the file is complete: nothing is left to escape from)
    parts = [b"abc+++def", b"+++x", bytes(100 - 9 - 4 - 3), b"+++"]
    connect(m, 'AT+QFOTADL="COM:",100,60')
    for part in parts[:-1]:
        m.write(part)
        assert m.read_for(3 * GUARD) == b""
    m.write(parts[-1])
    data = b"".join(parts)
    assert report(m, "QFOTADL") == (100, xor16(data))
    assert (m.state / "slot" / "package").read_bytes() == data


# ---- AT+QFUPL, AT+QFLST, AT+QFDEL -------------------------------------------

def cert(n):
    body = (b"MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n" * 80)
    pem = b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"
    return pem[:n]


def test_qfupl_ackmode_certificate_then_qflst_and_qfdel(make_modem):
    data = cert(2 * 1024 + 321)
    m = booted(make_modem)
    connect(m, f'AT+QFUPL="/datatx/fota_cacert.pem",{len(data)},5,1')
    m.write(data[:1023])
    assert m.read_for(0.2) == b""  # no A before a whole block
    m.write(data[1023:1024])
    assert m.read_until(b"A", deadline=DEADLINE) == b"A"
    m.write(data[1024:2048])
    assert m.read_until(b"A", deadline=DEADLINE) == b"A"
    m.write(data[2048:])
    assert report(m, "QFUPL") == (len(data), xor16(data))
    assert (m.state / "efs" / "datatx" / "fota_cacert.pem").read_bytes() == data
    assert m.cmd('AT+QFLST="/datatx/*"') == \
        f'\r\n+QFLST: "/datatx/fota_cacert.pem",{len(data)}\r\n\r\nOK\r\n'.encode()
    assert m.cmd("AT+QFLST") == b"\r\nOK\r\n"  # UFS holds nothing
    assert m.cmd('AT+QFDEL="/datatx/fota_cacert.pem"') == b"\r\nOK\r\n"
    assert m.cmd('AT+QFLST="/datatx/*"') == b"\r\nOK\r\n"
    assert m.cmd('AT+QFDEL="/datatx/fota_cacert.pem"') == b"\r\n+CME ERROR: 405\r\n"


def test_qfupl_ackmode_acks_a_last_whole_block_before_the_report(make_modem):
    data = cert(1024)
    m = booted(make_modem)
    connect(m, f'AT+QFUPL="/datatx/ssl/coap-cert.pem",{len(data)},5,1')
    m.write(data)
    assert m.read_until(b"A", deadline=DEADLINE) == b"A"
    assert report(m, "QFUPL") == (1024, xor16(data))


def test_qfupl_without_ackmode_sends_no_acks_and_defaults_to_ufs(make_modem):
    data = bytes(range(256)) * 9  # 2304 bytes
    m = booted(make_modem)
    connect(m, f'AT+QFUPL="cert.der",{len(data)}')
    m.write(data)
    assert report(m, "QFUPL") == (len(data), xor16(data))
    assert m.cmd("AT+QFLST") == f'\r\n+QFLST: "UFS:cert.der",{len(data)}\r\n\r\nOK\r\n'.encode()
    free, total = map(int, re.fullmatch(rb"\r\n\+QFLDS: (\d+),(\d+)\r\n\r\nOK\r\n",
                                        m.cmd('AT+QFLDS="UFS"')).groups())
    assert total - free == len(data)
    assert m.cmd("AT+QFLDS") == f"\r\n+QFLDS: {len(data)},1\r\n\r\nOK\r\n".encode()
    assert m.cmd('AT+QFDEL="*"') == b"\r\nOK\r\n"
    assert m.cmd("AT+QFLST") == b"\r\nOK\r\n"


def test_qfupl_of_an_existing_name_is_407(make_modem):
    m = booted(make_modem)
    connect(m, 'AT+QFUPL="UFS:a.txt",5')
    m.write(b"hello")
    assert report(m, "QFUPL") == (5, xor16(b"hello"))
    assert m.cmd('AT+QFUPL="UFS:a.txt",5') == b"\r\n+CME ERROR: 407\r\n"
    assert m.cmd('AT+QFUPL="a.txt",5') == b"\r\n+CME ERROR: 407\r\n"  # a bare name is UFS too
    assert (m.state / "efs" / "ufs" / "a.txt").read_bytes() == b"hello"


def test_qfupl_path_traversal_and_long_names_are_406_and_touch_nothing(make_modem, tmp_path):
    m = booted(make_modem)
    before = tree(tmp_path)
    for name in ["/datatx/../../etc/x", "UFS:../x", "/etc/x", "/datatx/ssl/../../x",
                 "../x", "/datatx/.x", "UFS:" + "a" * 77]:
        assert m.cmd(f'AT+QFUPL="{name}",10') == b"\r\n+CME ERROR: 406\r\n", name
        assert m.cmd(f'AT+QFDEL="{name}"') == b"\r\n+CME ERROR: 406\r\n", name
    assert m.cmd("AT") == b"\r\nOK\r\n"  # no CONNECT swallowed the line
    assert tree(tmp_path) == before
    assert files_named(tmp_path.parent, "x") == []


def test_qfupl_timeout_with_nothing_is_421_and_with_some_data_reports_it(make_modem):
    m = booted(make_modem)
    connect(m, 'AT+QFUPL="UFS:t.bin",100,1')
    assert m.read_until(b"\r\n+CME ERROR: 421\r\n") == b"\r\n+CME ERROR: 421\r\n"
    assert m.cmd("AT+QFLST") == b"\r\nOK\r\n"  # no file
    connect(m, 'AT+QFUPL="UFS:t.bin",100,1')
    m.write(b"abc")
    assert report(m, "QFUPL") == (3, xor16(b"abc"))
    assert m.cmd("AT+QFLST") == b'\r\n+QFLST: "UFS:t.bin",3\r\n\r\nOK\r\n'


def test_qfupl_plus_escape_keeps_the_file(make_modem):
    m = booted(make_modem, *SCALED)
    connect(m, 'AT+QFUPL="UFS:e.bin",1000,65535')  # escape, not timeout
    m.write(b"x+++y")
    assert m.read_for(3 * GUARD) == b""
    m.write(b"+++")
    assert report(m, "QFUPL") == (5, xor16(b"x+++y"))
    assert (m.state / "efs" / "ufs" / "e.bin").read_bytes() == b"x+++y"


def test_qfupl_bad_values(make_modem):
    m = booted(make_modem)
    for line in ['AT+QFUPL="a",0', 'AT+QFUPL="a",10,0', 'AT+QFUPL="a",10,65536',
                 'AT+QFUPL="a",10,5,2']:
        assert m.cmd(line) == b"\r\n+CME ERROR: 400\r\n", line
    assert m.cmd('AT+QFUPL="a",99999999') == b"\r\n+CME ERROR: 420\r\n"  # beyond the free space
    assert m.cmd("AT+QFUPL=1") == b"\r\n+CME ERROR: 425\r\n"
    assert m.cmd('AT+QFDEL="nothing.txt"') == b"\r\n+CME ERROR: 405\r\n"


# ---- --pace-uart --------------------------------------------------------------

def test_pace_uart_takes_data_no_faster_than_the_ipr_rate(make_modem):
    data = bytes(range(256)) * 16  # 4096 bytes: 0.71 s at 57600 bps
    m = booted(make_modem, "--pace-uart")
    assert m.cmd("AT+IPR=57600") == b"\r\nOK\r\n"
    m.close()
    m.open(baudrate=57600)
    connect(m, f'AT+QFUPL="UFS:p.bin",{len(data)}')
    t0 = time.monotonic()
    m.write(data)
    assert report(m, "QFUPL") == (len(data), xor16(data))
    assert time.monotonic() - t0 >= 0.9 * len(data) * 10 / 57600


# ---- data mode and the rest of the module ----------------------------------


def test_connect_drops_what_follows_on_the_command_line(make_modem):
    m = booted(make_modem)
    connect(m, 'AT+QFOTADL=3,0;+QFOTADL="COM:",4;+CSQ')
    m.write(b"abcd")
    assert report(m, "QFOTADL") == (4, xor16(b"abcd"))
    assert m.cmd("AT") == b"\r\nOK\r\n"  # no +CSQ answer came in between


def test_host_closing_the_port_ends_an_upload_as_dtr_drop(make_modem, tmp_path):
    trace = tmp_path / "wire.trace"
    m = booted(make_modem, "-v", "--trace", str(trace))
    m.cmd("AT+QFOTADL=3,0")
    connect(m, 'AT+QFOTADL="COM:",1000,3600')
    m.write(b"x" * 100)
    # a pty keeps no order between a host's bytes and its close: let the
    # module take the bytes in before the hang-up, as a UART line would
    end = time.monotonic() + DEADLINE
    while trace.read_text().count("x") < 100:
        assert time.monotonic() < end, trace.read_text()
    m.close()  # hang-up on close drops DTR; AT&D2 (default) ends data mode
    # the module must have seen the hang-up before a new host talks to it
    end = time.monotonic() + DEADLINE
    while "UART: host closed the port" not in m.log():
        assert time.monotonic() < end, m.log()
    # and answered the upload (once the slot had the bytes), to nobody
    while "+QFOTADL: 100," not in trace.read_text():
        assert time.monotonic() < end, trace.read_text()
    m.open()
    assert m.cmd("AT") == b"\r\nOK\r\n"
    assert m.cmd("AT+QFOTADL=4") == b"\r\n+QFOTADL: 4,100\r\n\r\nOK\r\n"


def test_package_upload_on_one_port_makes_the_family_busy_on_the_other(make_modem, tmp_path):
    usb_path = tmp_path / "usb.tty"
    m = booted(make_modem, "--usb", str(usb_path))
    connect(m, 'AT+QFOTADL="COM:",1000,3600')
    usb = serial.Serial(str(usb_path), 115200, timeout=0.05)
    try:
        for line in (b"AT+QFOTADL=1\r", b"AT+QFOTADL=5\r", b'AT+QFOTADL="COM:",10\r'):
            usb.write(line)
            got = b""
            end = time.monotonic() + DEADLINE
            while not got.endswith(b"\r\n+CME ERROR: 591\r\n"):
                assert time.monotonic() < end, got
                got += usb.read(256)
    finally:
        usb.close()
    m.write(b"y" * 1000)
    assert report(m, "QFOTADL") == (1000, xor16(b"y" * 1000))
