"""AT+QCFGEXT="fota_apn" (app note 2.2.4) as a host sees it: the test form,
the default before any set, set and query, every bad form (plain ERROR
whatever AT+CMEE says, the setting unchanged), and the setting kept across
a kill -9 right after its OK and across a clean restart."""
import pytest

from conftest import Modem

QUERY = 'AT+QCFGEXT="fota_apn"'


def shown(value: str) -> bytes:
    return f'\r\n+QCFGEXT: "fota_apn",{value}\r\n\r\nOK\r\n'.encode()


def booted(m):
    m.wait_boot()
    assert m.cmd("ATE0") == b"ATE0\r\r\nOK\r\n"
    return m


def test_test_form_lists_the_line_a_bg95_prints(modem):
    assert modem.cmd("AT+QCFGEXT=?") == (
        b'AT+QCFGEXT=?\r\r\n+QCFGEXT: "fota_apn",<iptype>,<apn>[,<username>,<password>]\r\n'
        b"\r\nOK\r\n")


def test_default_before_any_set_is_ipv4_without_apn(make_modem):
    m = booted(make_modem())
    assert m.cmd(QUERY) == shown('0,""')


@pytest.mark.parametrize("args, value", [
    ('1,"iot.example"', '1,"iot.example"'),
    ('2,"apn.b","user","secret"', '2,"apn.b","user","secret"'),
    ('0,""', '0,""'),
    ('0,"a b,c","",""', '0,"a b,c","",""'),
    ('0,"' + "a" * 99 + '","' + "u" * 127 + '","' + "p" * 127 + '"',
     '0,"' + "a" * 99 + '","' + "u" * 127 + '","' + "p" * 127 + '"'),
])
def test_set_then_query(make_modem, args, value):
    m = booted(make_modem())
    assert m.cmd(f"{QUERY},{args}") == b"\r\nOK\r\n"
    assert m.cmd(QUERY) == shown(value)


BAD = [
    'AT+QCFGEXT="fota_apm"',                 # wrong name
    'AT+QCFGEXT="apn",0,"a"',                # wrong name, right shape
    'AT+QCFGEXT=""',                         # empty name
    QUERY + ',3,"a"',                        # iptype out of range
    QUERY + ',-1,"a"',
    QUERY + ',"0","a"',                      # iptype quoted
    QUERY + ',x,"a"',                        # iptype not a number
    QUERY + ",0",                            # no APN
    QUERY + ",0,",                           # empty APN argument
    QUERY + ',,"a"',                         # no iptype
    QUERY + ',0,"a","u"',                    # 4 arguments: a user name without its password
    QUERY + ',0,"a","u",',                   # empty password argument
    QUERY + ',0,"a","u","p","x"',            # 6 arguments
    "AT+QCFGEXT=fota_apn",                   # name unquoted
    'AT+QCFGEXT=fota_apn,0,"a"',
    QUERY + ",0,internet",                   # APN unquoted
    QUERY + ',0,"a",user,"p"',               # user name unquoted
    QUERY + ',0,"a","u",pass',               # password unquoted
    QUERY + ',0,"a',                         # quote not closed
    "AT+QCFGEXT=",                           # nothing
    QUERY + ',0,"' + "a" * 100 + '"',        # APN of 100 characters
    QUERY + ',0,"a","' + "u" * 128 + '","p"',  # user name of 128
    QUERY + ',0,"a","u","' + "p" * 128 + '"',  # password of 128
]


def test_every_bad_form_is_error_and_changes_nothing(make_modem):
    m = booted(make_modem())
    assert m.cmd(QUERY + ',1,"kept","u","p"') == b"\r\nOK\r\n"
    for cmee in (0, 1, 2):
        assert m.cmd(f"AT+CMEE={cmee}") == b"\r\nOK\r\n"
        for line in BAD:
            assert m.cmd(line) == b"\r\nERROR\r\n", (cmee, line)
    assert m.cmd(QUERY) == shown('1,"kept","u","p"')


def test_setting_is_kept_across_kill_9_right_after_its_ok(make_modem, tmp_path):
    m = booted(make_modem())
    assert m.cmd(QUERY + ',2,"fleet.apn","u1","p1"') == b"\r\nOK\r\n"
    m.kill9()  # the OK is out: a power cut now must not lose the setting
    m.start()
    booted(m)
    assert m.cmd(QUERY) == shown('2,"fleet.apn","u1","p1"')
    assert m.cmd(QUERY + ',1,"b"') == b"\r\nOK\r\n"
    m.kill9()
    m2 = Modem(tmp_path).start()
    booted(m2)
    assert m2.cmd(QUERY) == shown('1,"b"')


def test_setting_is_kept_across_a_clean_restart(make_modem):
    m = booted(make_modem())
    assert m.cmd(QUERY + ',1,"restart.apn"') == b"\r\nOK\r\n"
    assert m.stop() == 0
    m.start()
    booted(m)
    assert m.cmd(QUERY) == shown('1,"restart.apn"')
    # and across the module's own reset
    assert m.cmd("AT+CFUN=1,1") == b"\r\nOK\r\n"
    booted(m)
    assert m.cmd(QUERY) == shown('1,"restart.apn"')
