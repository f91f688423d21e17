"""The foundation as a host sees it: boot, V.250 framing, the app note's 2.3
example, reopen, reset, persistence across kill -9, garbage lines."""
import os
import re
import time

from conftest import BOOT_URCS, DEADLINE, Modem

EXAMPLE_2_3 = (b"\r\n+CSQ: 26,99\r\n"
               b"\r\n+CEREG: 0,1\r\n"
               b"\r\n+CGREG: 0,4\r\n"
               b"\r\n+COPS: 0,0,\"Telstra Mobile Telstra\",8\r\n"
               b"\r\nOK\r\n")


def urc_lines(raw: bytes):
    return [l for l in raw.split(b"\r\n") if l]


def test_boot_urcs_arrive_in_order_after_power_on(make_modem):
    m = make_modem()
    raw = m.wait_boot()
    assert urc_lines(raw) == BOOT_URCS
    assert raw == b"".join(b"\r\n" + u + b"\r\n" for u in BOOT_URCS)


def test_ready_line_names_model_firmware_and_port(make_modem, tmp_path):
    m = make_modem("--model", "BG77")
    assert m.ready_line == f"dfota-sim: BG77 BG77LAR02A04_01.012.01.012 on {tmp_path / 'modem.tty'}"
    assert os.path.islink(m.tty)


def test_at_echo_framing_byte_for_byte(modem):
    assert modem.cmd("AT") == b"AT\r\r\nOK\r\n"


def test_ate0_atv0_and_cmee_modes(modem):
    assert modem.cmd("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert modem.cmd("AT+CMEE=9") == b"\r\n+CME ERROR: 50\r\n"
    assert modem.cmd("AT+CMEE=2") == b"\r\nOK\r\n"
    assert modem.cmd("AT+CMEE=9") == b"\r\n+CME ERROR: incorrect parameters\r\n"
    assert modem.cmd("AT+CMEE=0") == b"\r\nOK\r\n"
    assert modem.cmd("AT+CMEE=9") == b"\r\nERROR\r\n"
    modem.write(b"ATV0\r")
    assert modem.read_until(b"0\r") == b"0\r"
    modem.write(b"AT+CSQ\r")
    assert modem.read_until(b"0\r") == b"+CSQ: 26,99\r\n0\r"
    modem.write(b"AT+NOSUCH\r")
    assert modem.read_until(b"4\r") == b"4\r"


def test_app_note_2_3_example_byte_for_byte(modem):
    line = "AT+CSQ;+CEREG?;+CGREG?;+COPS?"
    assert modem.cmd(line) == line.encode() + b"\r" + EXAMPLE_2_3


def test_concatenated_commands_stop_at_an_error(modem):
    modem.cmd("ATE0")
    assert modem.cmd("AT+CSQ;+NOSUCH;+CEREG?") == b"\r\n+CSQ: 26,99\r\n\r\nERROR\r\n"
    assert modem.cmd("AT+CSQ;+CFUN=7;+CEREG?") == b"\r\n+CSQ: 26,99\r\n\r\n+CME ERROR: 50\r\n"


def test_identity_commands(modem):
    modem.cmd("ATE0")
    # the lines of one command are one block, as a BG95 frames them
    assert modem.cmd("ATI") == b"\r\nQuectel\r\nBG95-M3\r\nRevision: BG95M3LAR02A03\r\n\r\nOK\r\n"
    assert modem.cmd("AT+CGMR") == b"\r\nBG95M3LAR02A03\r\n\r\nOK\r\n"
    assert modem.cmd("at+qgmr") == b"\r\nBG95M3LAR02A03_01.012.01.012\r\n\r\nOK\r\n"
    assert modem.cmd("AT+CGMI") == b"\r\nQuectel\r\n\r\nOK\r\n"
    imei = modem.cmd("AT+GSN")
    assert re.fullmatch(rb"\r\n\d{15}\r\n\r\nOK\r\n", imei)
    assert modem.cmd("AT+CREG?") == b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"
    assert modem.cmd("AT+CPIN?") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert modem.cmd("AT+QFOTADL=?") == b"\r\nOK\r\n"


def test_reopen_of_the_port_keeps_the_module_running(modem):
    modem.cmd("ATE0")
    modem.close()
    modem.open()
    assert modem.cmd("AT") == b"\r\nOK\r\n"
    modem.close()
    modem.open()
    assert modem.cmd("AT+CSQ") == b"\r\n+CSQ: 26,99\r\n\r\nOK\r\n"


def test_output_while_closed_is_not_a_stale_backlog(make_modem, tmp_path):
    trace = tmp_path / "wire.trace"
    m = make_modem("--trace", str(trace))
    m.wait_boot()
    m.cmd("ATE0")
    # a reset, then nobody listens while the module reboots: its boot URCs
    # are gone, as a real UART's bytes are
    m.write(b"AT+CFUN=1,1\r")
    m.read_until(b"OK\r\n")
    m.close()
    end = time.monotonic() + DEADLINE
    while trace.read_text().count("+QIND: SMS DONE") < 2:
        assert time.monotonic() < end, "the module did not reboot"
    m.open()
    assert m.cmd("AT") == b"AT\r\r\nOK\r\n"


def test_cfun_1_1_reboots_with_boot_urcs(modem):
    modem.cmd("ATE0")
    assert modem.cmd("AT+CFUN=1,1") == b"\r\nOK\r\n"
    assert urc_lines(modem.wait_boot()) == BOOT_URCS
    assert modem.cmd("AT") == b"AT\r\r\nOK\r\n"  # ATE0 was not saved: echo is back


def test_ate0_survives_a_reset_only_when_saved(modem):
    modem.cmd("ATE0")
    modem.cmd("AT+CFUN=1,1")
    modem.wait_boot()
    assert modem.cmd("AT") == b"AT\r\r\nOK\r\n"
    modem.cmd("ATE0;&W")
    modem.cmd("AT+CFUN=1,1")
    modem.wait_boot()
    assert modem.cmd("AT") == b"\r\nOK\r\n"


def test_state_survives_kill_9_and_restart(make_modem, tmp_path):
    m = make_modem()
    m.wait_boot()
    imei = m.cmd("AT+GSN")
    m.cmd("AT+IPR=921600;&W")
    m.kill9()
    # the module comes back at the saved rate: the host follows it
    m2 = Modem(tmp_path).start(open_port=False)
    m2.open(baudrate=921600)
    m2.wait_boot()
    try:
        assert m2.cmd("AT+GSN") == imei
        assert m2.cmd("AT+IPR?") == b"AT+IPR?\r\r\n+IPR: 921600\r\n\r\nOK\r\n"
    finally:
        m2.stop()


def test_ten_kb_garbage_line_gets_error_and_at_still_works(modem):
    modem.cmd("ATE0")
    modem.write(b"AT" + bytes((i * 7 + 33) % 94 + 33 for i in range(10240)) + b"\r")
    assert modem.read_until(b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert modem.cmd("AT") == b"\r\nOK\r\n"


def test_commands_before_app_rdy_get_error_and_before_rdy_nothing(make_modem):
    # standard profile scaled down: RDY at 300 ms, APP RDY 100 ms later
    m = make_modem("--profile", "standard", "--time-scale", "0.2")
    m.write(b"AT\r")  # before RDY: no echo, no answer
    got = m.read_until(b"RDY\r\n")
    assert got == b"\r\nRDY\r\n"
    m.write(b"AT\r")
    got = m.read_until(b"APP RDY\r\n")
    assert got == b"AT\r\r\nERROR\r\n\r\nAPP RDY\r\n"
    m.wait_boot()
    assert m.cmd("AT") == b"AT\r\r\nOK\r\n"


def test_qpowd_powers_down_for_good(modem):
    modem.cmd("ATE0")
    modem.write(b"AT+QPOWD\r")
    assert modem.read_until(b"NORMAL POWER DOWN\r\n") == b"\r\nOK\r\n\r\nNORMAL POWER DOWN\r\n"
    modem.write(b"AT\r")
    assert modem.read_for(0.2) == b""


def test_sigterm_removes_the_symlink_and_exits_zero(make_modem):
    m = make_modem()
    m.wait_boot()
    assert m.stop() == 0
    assert not os.path.lexists(m.tty)


def test_trace_shows_both_directions(make_modem, tmp_path):
    trace = tmp_path / "wire.trace"
    m = make_modem("--trace", str(trace))
    m.wait_boot()
    m.cmd("AT+CSQ")
    m.stop()
    text = trace.read_text()
    assert re.search(r"^\s*\d+\.\d{6} UART < AT\+CSQ\\r$", text, re.M), text
    assert re.search(r"^\s*\d+\.\d{6} UART > \\r\\n\+CSQ: 26,99\\r\\n\\r\\nOK\\r\\n$", text, re.M), text
