"""PDP contexts and the network model as a host sees them through the real
dfota-sim: AT+CGDCONT, AT+QICSGP, AT+QIACT, AT+QIDEACT, AT+CGATT,
AT+CGPADDR; --network-apns refusing an APN in AT+QIACT; the definitions
kept across a kill -9 right after their OK, the activation not."""
import re

from conftest import Modem

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
DEFAULT_CGDCONT = b'\r\n+CGDCONT: 1,"IP","","0.0.0.0",0,0,0,0\r\n' + OK
QIACT_LINE = re.compile(rb'^\r\n\+QIACT: 1,1,1,"10\.\d+\.\d+\.\d+"\r\n\r\nOK\r\n$')


def booted(m):
    m.wait_boot()
    assert m.cmd("ATE0") == b"ATE0\r\r\nOK\r\n"
    return m


def test_context_1_comes_defined_and_the_test_forms(make_modem):
    m = booted(make_modem())
    assert m.cmd("AT+CGDCONT?") == DEFAULT_CGDCONT
    assert m.cmd("AT+CGDCONT=?").startswith(
        b'\r\n+CGDCONT: (1-15),"IP",,,(0-2),(0-4),(0),(0)\r\n')
    assert m.cmd("AT+QICSGP=?") == (
        b"\r\n+QICSGP: (1-16),(1-3),<APN>,<username>,<password>,(0-3)\r\n" + OK)
    assert m.cmd("AT+QIACT=?") == b"\r\n+QIACT: (1-16)\r\n" + OK
    assert m.cmd("AT+QIDEACT=?") == b"\r\n+QIDEACT: (1-16)\r\n" + OK
    assert m.cmd("AT+CGATT=?") == b"\r\n+CGATT: (0,1)\r\n" + OK
    assert m.cmd("AT+CGPADDR=?") == b"\r\n+CGPADDR: (1)\r\n" + OK


def test_the_bg95_session_of_the_1nce_capture(make_modem):
    """AT+QICSGP, AT+QIACT? with none active, AT+QIACT=1, AT+QIACT? as a
    BG95-M3 answered them (cmd_pdp.c names the capture)."""
    m = booted(make_modem())
    assert m.cmd('AT+QICSGP=1,1,"iot.1nce.net","","",0') == OK
    assert m.cmd("AT+QIACT?") == OK
    assert m.cmd("AT+QIACT=1") == OK
    got = m.cmd("AT+QIACT?")
    assert QIACT_LINE.match(got), got
    address = got.split(b'"')[1]
    assert m.cmd("AT+CGPADDR=1") == b'\r\n+CGPADDR: 1,"' + address + b'"\r\n' + OK
    assert m.cmd("AT+CGATT?") == b"\r\n+CGATT: 1\r\n" + OK
    assert m.cmd("AT+QICSGP=1") == b'\r\n+QICSGP: 1,"iot.1nce.net","","",0\r\n' + OK
    assert m.cmd("AT+CGDCONT?") == b'\r\n+CGDCONT: 1,"IP","iot.1nce.net","0.0.0.0",0,0,0,0\r\n' + OK
    assert m.cmd("AT+QIDEACT=1") == OK
    assert m.cmd("AT+QIACT?") == OK
    assert m.cmd("AT+CGPADDR") == b'\r\n+CGPADDR: 1,"0.0.0.0"\r\n' + OK


def test_qiact_needs_the_radio_and_the_attach(make_modem):
    m = booted(make_modem())
    assert m.cmd("AT+CFUN=4") == OK
    assert m.cmd("AT+QIACT=1") == ERROR
    assert m.cmd("AT+CGATT?") == b"\r\n+CGATT: 0\r\n" + OK
    assert m.cmd("AT+CFUN=1") == OK
    assert m.cmd("AT+QIACT=1") == OK
    assert m.cmd("AT+CFUN=0") == OK  # the radio off ends the PDN connection
    assert m.cmd("AT+QIACT?") == OK
    assert m.cmd("AT+CFUN=1") == OK
    m.read_until(b"+CPIN: READY\r\n")
    assert m.cmd("AT+QIACT=1") == OK
    assert m.cmd("AT+CGATT=0") == OK
    assert m.cmd("AT+QIACT?") == OK
    assert m.cmd("AT+QIACT=1") == ERROR
    assert m.cmd("AT+CGATT=1") == OK
    assert m.cmd("AT+QIACT=1") == OK


def test_network_apns_refuses_an_apn_in_qiact(make_modem):
    m = booted(make_modem("--network-apns", "internet,iot.example"))
    assert m.cmd('AT+QICSGP=1,1,"not.listed"') == OK
    assert m.cmd("AT+QIACT=1") == ERROR
    assert m.cmd("AT+QIACT?") == OK
    assert m.cmd('AT+CGDCONT=1,"IP","IoT.Example"') == OK  # APNs match case-insensitively
    assert m.cmd("AT+QIACT=1") == OK
    assert m.cmd('AT+QICSGP=2,1,""') == OK  # the network's default APN
    assert m.cmd("AT+QIACT=2") == OK


def test_any_apn_without_network_apns(make_modem):
    m = booted(make_modem())
    assert m.cmd('AT+QICSGP=1,1,"not.listed"') == OK
    assert m.cmd("AT+QIACT=1") == OK


def test_bad_forms(make_modem):
    m = booted(make_modem())
    for line in ('AT+CGDCONT=16,"IP","a"', 'AT+CGDCONT=1,"X25"', "AT+CGDCONT=1,IP",
                 "AT+CGATT=2", "AT+CGPADDR=17"):
        assert m.cmd(line) == b"\r\n+CME ERROR: 50\r\n", line
    for line in ("AT+QICSGP=17", 'AT+QICSGP=1,4,"a"', 'AT+QICSGP=1,1,"a","u"',
                 "AT+QIACT=2", "AT+QIACT=0", "AT+QIDEACT=17"):
        assert m.cmd(line) == ERROR, line
    assert m.cmd("AT+CGDCONT?") == DEFAULT_CGDCONT


def test_definitions_survive_kill_9_right_after_their_ok_activation_does_not(make_modem,
                                                                            tmp_path):
    m = booted(make_modem())
    assert m.cmd('AT+CGDCONT=1,"IP","kept.apn"') == OK
    assert m.cmd('AT+QICSGP=2,3,"two.apn","u","p",1') == OK
    assert m.cmd("AT+QIACT=1") == OK
    m.kill9()  # the OKs are out: a power cut now must not lose the definitions
    m2 = Modem(tmp_path).start()
    booted(m2)
    assert m2.cmd("AT+CGDCONT?") == (
        b'\r\n+CGDCONT: 1,"IP","kept.apn","0.0.0.0",0,0,0,0\r\n'
        b'+CGDCONT: 2,"IPV4V6","two.apn","0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0",0,0,0,0\r\n' + OK)
    assert m2.cmd("AT+QICSGP=2") == b'\r\n+QICSGP: 3,"two.apn","u","p",1\r\n' + OK
    assert m2.cmd("AT+QIACT?") == OK  # activation is not kept
    # undefining is kept too, and the module's own reset drops activation
    assert m2.cmd("AT+CGDCONT=2") == OK
    assert m2.cmd("AT+QIACT=1") == OK
    assert m2.cmd("AT+CFUN=1,1") == OK
    booted(m2)
    assert m2.cmd("AT+QIACT?") == OK
    assert m2.cmd("AT+CGDCONT?") == b'\r\n+CGDCONT: 1,"IP","kept.apn","0.0.0.0",0,0,0,0\r\n' + OK
