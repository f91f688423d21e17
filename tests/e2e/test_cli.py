"""dfota-sim as its README shows it: the first Python example run right
after the ready line of the README's first command, and a second modem on a
state dir that another dfota-sim holds."""
import re
import subprocess
import sys

from conftest import DEADLINE, ROOT, SIM


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text()
    mt = re.search(r"```python\n(.*?)```", text, re.S)
    assert mt, "README.md has no Python example"
    return mt.group(1)


def run_example(cwd):
    return subprocess.run([sys.executable, "-c", readme_python_example()], cwd=cwd,
                          capture_output=True, timeout=DEADLINE, check=False)


def test_readme_python_example_works_right_after_the_ready_line(make_modem):
    # as the README's first command starts it: no options at all (standard
    # profile, still booting when the ready line comes)
    m = make_modem(open_port=False, wait_open=False, bare=True)
    out = run_example(m.workdir)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().endswith("BG95M3LAR02A03_01.012.01.012\r\n\r\nOK\r\n\n"), out
    assert m.stop() == 0


def test_readme_python_example_works_with_wait_open(make_modem):
    m = make_modem("--wait-open", "--profile", "fast", open_port=False, wait_open=False,
                   bare=True)
    out = run_example(m.workdir)
    assert out.returncode == 0, out.stderr.decode()
    assert "BG95M3LAR02A03_01.012.01.012\r\n\r\nOK\r\n" in out.stdout.decode(), out


def test_a_second_modem_on_a_held_state_dir_says_so(make_modem, tmp_path):
    m = make_modem()
    m.wait_boot()
    second = subprocess.run([str(SIM), "--uart", str(tmp_path / "other.tty"), "--state-dir",
                             str(m.state), "--profile", "fast"], cwd=tmp_path,
                            capture_output=True, timeout=DEADLINE, check=False)
    assert second.returncode == 1
    assert second.stdout == b""  # no ready line
    err = second.stderr.decode()
    assert (f"dfota-sim: the state dir {m.state} is in use by another dfota-sim "
            f"(pid {m.proc.pid}); give another --state-dir\n") in err, err
    assert not (tmp_path / "other.tty").exists()
    assert m.cmd("AT") == b"AT\r\r\nOK\r\n"  # the first one runs on untouched
