"""dfota-pack verify checks every byte of a package with no source image: a
flipped byte in any region (fixed header, block table, checksum, each frame),
a cut or extra bytes fail it with exit status 1 and a one-line reason; an
intact package passes, and `--from` still applies it and checks the target."""
import json
import struct
import subprocess

import pytest

from conftest import PACK

OLD = "BG95M3LAR02A03_01.012.01.012"
NEW = "BG95M3LAR02A04_01.200.01.200"
SIZE = "256K"  # 4 blocks of 64 KiB: every region, quickly

FIXED = 272  # PKG_FIXED_HEADER_SIZE (src/pkg/pkg_int.h, format 2)
ENTRY = 32


def run(*args):
    return subprocess.run([str(PACK), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    d = tmp_path_factory.mktemp("pack")
    out = d / "update.pkg"
    r = run("build", "--from", OLD, "--to", NEW, "--size", SIZE, "-o", out)
    assert r.returncode == 0, r.stderr
    info = json.loads(run("info", "--json", out).stdout)
    data = out.read_bytes()
    assert info["format_version"] == 2 and info["block_count"] == 4
    assert info["total_size"] == len(data)
    frames = []
    for i in range(info["block_count"]):
        off, length = struct.unpack_from("<QI", data, FIXED + i * ENTRY)
        frames.append((info["header_size"] + off, length))
    return {"path": out, "data": data, "info": info, "frames": frames}


def regions(pkg):
    """(name, offset) of one byte in every region of the package."""
    h = pkg["info"]["header_size"]
    out = [("magic", 0), ("format version", 8), ("flags", 10), ("header size", 12),
           ("block size", 16), ("block count", 20), ("source size", 24),
           ("target size", 32), ("payload size", 40), ("source sha256", 48),
           ("target sha256", 80 + 31), ("source version", 112), ("target version", 176 + 5),
           ("payload sha256", 240), ("payload sha256 end", 271)]
    out += [(f"block table entry {i}", FIXED + i * ENTRY + (i * 9) % ENTRY) for i in range(4)]
    out += [("header checksum", h - 32), ("header checksum end", h - 1)]
    for i, (off, length) in enumerate(pkg["frames"]):
        out += [(f"frame {i} first byte", off), (f"frame {i} middle", off + length // 2),
                (f"frame {i} last byte", off + length - 1)]
    return out


def check_fails(path, data):
    path.write_bytes(data)
    r = run("verify", path)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith(f"dfota-pack: {path}: ") and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_intact_package_verifies_ok(package):
    r = run("verify", package["path"])
    assert (r.returncode, r.stdout, r.stderr) == (0, "OK\n", "")


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_flipped_byte_in_every_region_fails_verify(package, tmp_path, mask):
    bad = tmp_path / "bad.pkg"
    seen = set()
    for name, at in regions(package):
        data = bytearray(package["data"])
        data[at] ^= mask
        seen.add(check_fails(bad, bytes(data)).split(": ", 2)[2].strip())
        # the reason names the class: not every flip reads as the same one
    assert len(seen) >= 3, seen


def test_flipped_frame_byte_says_which_block_or_the_digest(package, tmp_path):
    bad = tmp_path / "bad.pkg"
    off, length = package["frames"][2]
    data = bytearray(package["data"])
    data[off] ^= 0xFF  # the frame's zstd magic
    assert "block 2: corrupt frame" in check_fails(bad, bytes(data))
    # some byte of frame 2 still decodes when flipped: only the digest sees it
    reasons = []
    for at in range(off + length // 2, off + length):
        data = bytearray(package["data"])
        data[at] ^= 0x01
        reasons.append(check_fails(bad, bytes(data)))
        if "payload digest mismatch" in reasons[-1]:
            break
    assert "payload digest mismatch" in reasons[-1], reasons[-3:]


@pytest.mark.parametrize("cut", [1, 100, "frames", "header"])
def test_truncated_package_fails_verify(package, tmp_path, cut):
    data = package["data"]
    keep = {"frames": package["info"]["header_size"] + 10,
            "header": FIXED + 5}.get(cut, len(data) - cut if isinstance(cut, int) else 0)
    assert "truncated package" in check_fails(tmp_path / "cut.pkg", data[:keep])


@pytest.mark.parametrize("extra", [b"\0", b"\n", b"x" * 4096])
def test_extra_bytes_fail_verify(package, tmp_path, extra):
    reason = check_fails(tmp_path / "long.pkg", package["data"] + extra)
    assert "trailing data" in reason


def test_not_a_package_fails_verify(tmp_path):
    reason = check_fails(tmp_path / "vendor.bin", b"QUECTEL-DELTA\0" + bytes(range(256)) * 4)
    assert "not a dfota-sim package" in reason


def test_verify_from_applies_and_checks_the_target(package, tmp_path):
    r = run("verify", package["path"], "--from", OLD, "--size", SIZE)
    assert (r.returncode, r.stdout, r.stderr) == (0, "OK\n", "")
    r = run("verify", package["path"], "--from", NEW, "--size", SIZE)
    assert r.returncode == 1 and "not the package's source" in r.stderr, r.stderr
    # a damaged package fails before any source is read
    data = bytearray(package["data"])
    data[package["frames"][1][0] + 7] ^= 0x20
    bad = tmp_path / "bad.pkg"
    bad.write_bytes(bytes(data))
    r = run("verify", bad, "--from", OLD, "--size", SIZE)
    assert r.returncode == 1 and r.stdout == "", r.stderr
