"""Replies as a BG95 frames them, and no reply lost: one block per command,
CR LF line endings, unsupported forms, flow control both ways, AT+IPR
switching the UART at once (issue 9). No sleeps: every wait has a deadline."""
import errno
import fcntl
import os
import re
import select
import time

from conftest import DEADLINE

OK = b"\r\nOK\r\n"


def booted(make_modem, *args):
    m = make_modem(*args)
    m.wait_boot()
    m.cmd("ATE0")
    return m


def make_files(m, count, name_len=70):
    """Files in the module's UFS, made beside it (the listing reads the
    folder): long names, so that a listing is large."""
    ufs = m.state / "efs" / "ufs"
    ufs.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"f{i:05d}".ljust(name_len, "x")
        (ufs / name).write_bytes(b"abc")
        names.append(name)
    return names


def read_slowly(m, end_marker: bytes, chunk=1024):
    """Reads in small pieces until @end_marker ends what arrived."""
    buf = bytearray()
    end = time.monotonic() + DEADLINE
    while not buf.endswith(end_marker):
        assert time.monotonic() < end, bytes(buf[-200:])
        buf += m.ser.read(chunk)
    return bytes(buf)


# ---- one block per command ---------------------------------------------------

def test_qflst_of_three_files_is_one_block(make_modem):
    m = booted(make_modem)
    make_files(m, 3, name_len=8)
    assert m.cmd("AT+QFLST") == (b'\r\n+QFLST: "UFS:f00000xx",3\r\n+QFLST: "UFS:f00001xx",3\r\n'
                                 b'+QFLST: "UFS:f00002xx",3\r\n\r\nOK\r\n')
    # chained: each command keeps its own block
    assert m.cmd("AT+QFLST;+CSQ") == (b'\r\n+QFLST: "UFS:f00000xx",3\r\n+QFLST: "UFS:f00001xx",3\r\n'
                                      b'+QFLST: "UFS:f00002xx",3\r\n'
                                      b"\r\n+CSQ: 26,99\r\n\r\nOK\r\n")


def test_ati_is_one_block_and_v0_keeps_v250(make_modem):
    m = booted(make_modem)
    assert m.cmd("ATI") == b"\r\nQuectel\r\nBG95-M3\r\nRevision: BG95M3LAR02A03\r\n\r\nOK\r\n"
    m.write(b"ATV0\r")
    assert m.read_until(b"0\r") == b"0\r"
    m.write(b"ATI\r")
    assert m.read_until(b"0\r") == b"Quectel\r\nBG95-M3\r\nRevision: BG95M3LAR02A03\r\n0\r"


# ---- CR LF -------------------------------------------------------------------

def test_cr_lf_line_ending_echoes_no_lf(modem):
    modem.write(b"AT\r\n")
    assert modem.read_until(OK) == b"AT\r\r\nOK\r\n"
    modem.write(b"AT+CSQ\r\nAT\r\n")  # a stray LF would show between the two
    assert modem.read_until(b"AT\r\r\nOK\r\n") == b"AT+CSQ\r\r\n+CSQ: 26,99\r\n\r\nOK\r\nAT\r\r\nOK\r\n"
    assert modem.cmd("AT") == b"AT\r\r\nOK\r\n"


# ---- forms a command does not have ------------------------------------------------

def test_unsupported_form_is_cme_3_and_unknown_command_error(make_modem):
    m = booted(make_modem)
    assert m.cmd("AT+CSQ?") == b"\r\n+CME ERROR: 3\r\n"
    assert m.cmd("AT+NOSUCH?") == b"\r\nERROR\r\n"
    m.cmd("AT+CMEE=2")
    assert m.cmd("AT+CSQ?") == b"\r\n+CME ERROR: operation not allowed\r\n"
    assert m.cmd("AT+NOSUCH") == b"\r\nERROR\r\n"
    m.cmd("AT+CMEE=0")
    assert m.cmd("AT+CSQ?") == b"\r\nERROR\r\n"


# ---- no reply lost -----------------------------------------------------------------

def test_qflst_of_thousands_of_files_comes_out_whole_to_a_slow_reader(make_modem):
    m = booted(make_modem)
    names = make_files(m, 3000)  # ~280 kB of listing: more than any output limit
    m.write(b"AT+QFLST\r")
    got = read_slowly(m, OK)
    want = b"\r\n" + b"".join(f'+QFLST: "UFS:{n}",3\r\n'.encode() for n in names) + OK
    assert len(got) == len(want)
    assert got == want
    assert m.cmd("AT") == OK


def test_long_chained_line_comes_out_whole_with_its_ok(make_modem):
    m = booted(make_modem)
    names = make_files(m, 30)
    m.write(b"AT" + b";".join([b"+QFLST"] * 100) + b"\r")  # 30 files listed 100 times
    got = read_slowly(m, OK)
    block = b"\r\n" + b"".join(f'+QFLST: "UFS:{n}",3\r\n'.encode() for n in names)
    assert got == block * 100 + OK


def test_host_writing_1_mb_without_reading_then_reading_gets_every_answer(make_modem):
    m = booted(make_modem)
    count = (1 << 20) // 3
    data = b"AT\r" * count
    fd = m.ser.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    sent = 0
    end = time.monotonic() + DEADLINE
    # the host writes and does not read: the module stops reading once its
    # answers wait, so the host's writes stop long before 1 MB
    while True:
        assert time.monotonic() < end
        _, w, _ = select.select([], [fd], [], 0.5)
        if not w:
            break  # nothing taken for half a second: the line is held
        try:
            sent += os.write(fd, data[sent:sent + 65536])
        except BlockingIOError:
            continue
    assert 0 < sent < len(data), sent
    # now the host reads, writing the rest as the line takes it
    got = bytearray(m.pending)
    want = len(OK) * count
    end = time.monotonic() + 4 * DEADLINE
    while len(got) < want:
        assert time.monotonic() < end, (sent, len(got))
        r, w, _ = select.select([fd], [fd] if sent < len(data) else [], [], 1.0)
        if r:
            try:
                got += os.read(fd, 1 << 16)
            except BlockingIOError:
                pass
        if w:
            try:
                sent += os.write(fd, data[sent:sent + 65536])
            except BlockingIOError:
                pass
    assert sent == len(data)
    assert bytes(got) == OK * count
    assert "output lost" not in m.log()


# ---- AT+IPR ------------------------------------------------------------------------

def test_ipr_switches_the_uart_at_once_after_its_ok(make_modem):
    m = booted(make_modem)
    # the OK leaves at the old rate; the next byte at the new one
    m.write(b"AT+IPR=921600\rAT\r")
    assert m.read_until(OK) == OK
    end = time.monotonic() + DEADLINE
    while "output is garbled" not in m.log():
        assert time.monotonic() < end, m.log()
    # at 921600 into a 115200 receiver, a frame's start bit is a glitch:
    # little or nothing arrives, and no answer
    garbled = m.pending + m.ser.read(4096)
    assert b"OK" not in garbled and b"AT" not in garbled
    # a host that follows the rate is answered
    m.ser.baudrate = 921600
    m.ser.reset_input_buffer()
    m.pending = b""
    assert m.cmd("AT") == OK
    assert m.cmd("AT+IPR?") == b"\r\n+IPR: 921600\r\n\r\nOK\r\n"


def test_host_that_sets_no_speed_reads_at_the_modules_rate(make_modem):
    m = booted(make_modem, "-v")
    assert m.cmd("AT+IPR=921600") == OK
    m.close()
    end = time.monotonic() + DEADLINE
    while "UART: host closed the port" not in m.log():
        assert time.monotonic() < end, m.log()
    # a host program that opens the port and sets no speed (no tcsetattr)
    fd = os.open(m.tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        os.write(fd, b"AT\r")
        got = b""
        end = time.monotonic() + DEADLINE
        while not got.endswith(OK):
            assert time.monotonic() < end, got
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    got += os.read(fd, 4096)
                except OSError as e:
                    if e.errno != errno.EAGAIN:
                        raise
        assert got == OK
    finally:
        os.close(fd)
