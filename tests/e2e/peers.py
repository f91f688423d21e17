"""The servers an HTTP(S) download talks to, started by the tests on
loopback: nginx (the real thing, for everything a web server says) and a
tiny stdlib Python server for what nginx cannot be made to do (cut a body,
cut a chunk, talk garbage, stall). Certificates are made with the openssl
CLI, packages with the real dfota-pack. Nothing here sleeps: readiness is a
connect against a deadline, a stall is a thread blocked on a pipe that the
client's going away or the peer's stop() wakes.

Used by the e2e fixtures (conftest.py: certs, packages, nginx, pyhttp) and by
bench/bench_http.py. Standard library only, plus nginx, openssl, dfota-pack.

URLs (see Nginx.url and PyHttp.url):

  nginx, on every server ("http", "https", "wrongname", "mtls"):
    /pkg/<name>        the file with Content-Length (404 for a missing name)
    /chunked/<name>    the same bytes, Transfer-Encoding: chunked, no length
    /slow/<name>       the same, 64 KiB at once then 256 KiB/s (slow, never
                       silent for long: no stall)
    /gone              410          /error        500
    /r/3               3 redirects to /pkg/update.pkg: 301 absolute,
                       302 relative ("/r/1"), 307 absolute
    /redirect/<n>      n redirects (1..8, mixed 301/302/303/307/308) to
                       /pkg/update.pkg
    /loop              302 to itself, for ever
  Python (PyHttp):
    /ok/<name>         200 with Content-Length (a control)
    /cut/<name>        Content-Length: N, N/2 bytes, then the connection closes
    /cutchunk/<name>   chunked: whole chunks of the first half, then a chunk
                       whose header promises more than is sent, then close
    /stall/<name>      Content-Length: N, N/2 bytes, then nothing until the
                       client goes away (or the peer stops)
    /silent            the request is read, nothing ever answered
    /malformed/status  a garbage status line
    /malformed/header  a header line with no colon
    /malformed/length  Content-Length: 12abc
"""
import os
import random
import select
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path

OLD = "BG95M3LAR02A03_01.012.01.012"  # the default firmware of a BG95-M3
NEW = "BG95M3LAR02A04_01.200.01.200"
SLOT_M3 = 7296 * 1024  # the NAND space for a package, app note 2.2.3.3 note 1
SLOT_M1 = 7040 * 1024
READY_DEADLINE = 30.0  # seconds a peer may take to start listening


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port nothing listens on right now (bound to port 0, then closed).
    Another process may take it before the caller does: Nginx.start retries."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_listening(port, proc=None, deadline=READY_DEADLINE, host="127.0.0.1", log=None):
    """Connects to host:port until it accepts or the deadline passes; fails
    at once when proc (the server) exits meanwhile."""
    end = time.monotonic() + deadline
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on "
                               f"{port}: {log() if log else ''}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > end:
                raise RuntimeError(f"nothing listens on {host}:{port} after {deadline} s: "
                                   f"{log() if log else ''}")
            # a refused connect returns at once: the loop polls the server
            # until it listens; select on nothing yields the core briefly
            select.select([], [], [], 0.005)


# ---- certificates -----------------------------------------------------------

class Certs:
    """Every certificate the HTTPS tests need, made in @workdir with the
    openssl CLI: ca (signs server and wrong_name), other_ca (signs nothing
    the servers use), client_ca (signs client). Each leaf is a (cert, key)
    pair of paths; pem(path) is its bytes."""

    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self._ca("ca", "dfota-sim test CA")
        self.other_ca = self._ca("other-ca", "an unrelated CA")
        self.client_ca = self._ca("client-ca", "dfota-sim test client CA")
        # the main server's key is RSA (the common case), the rest EC P-256
        self.server = self._leaf("server", self.ca, "localhost",
                                 "DNS:localhost,IP:127.0.0.1,IP:::1", "serverAuth", rsa=True)
        self.wrong_name = self._leaf("wrong-name", self.ca, "wrong.example",
                                     "DNS:wrong.example", "serverAuth")
        self.client = self._leaf("client", self.client_ca, "dfota-sim test client", None,
                                 "clientAuth")

    @staticmethod
    def pem(path) -> bytes:
        return Path(path).read_bytes()

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, cwd=self.dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def _key(self, name, rsa=False):
        key = self.dir / f"{name}.key"
        if rsa:
            self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                          "-out", str(key))
        else:
            self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-out", str(key))
        return key

    def _ca(self, name, cn):
        key = self._key(name)
        cert = self.dir / f"{name}.pem"
        self._openssl("req", "-x509", "-new", "-key", str(key), "-out", str(cert), "-days", "3",
                      "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                      "-addext", "subjectKeyIdentifier=hash")
        return cert, key

    def _leaf(self, name, ca, cn, san, usage, rsa=False):
        key = self._key(name, rsa)
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.pem"
        ext = self.dir / f"{name}.ext"
        lines = ["basicConstraints=critical,CA:FALSE",
                 "keyUsage=critical,digitalSignature,keyEncipherment",
                 f"extendedKeyUsage={usage}",
                 "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
        if san:
            lines.append(f"subjectAltName={san}")
        ext.write_text("\n".join(lines) + "\n")
        self._openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
        self._openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
                      "-CAcreateserial", "-out", str(cert), "-days", "2",
                      "-extfile", str(ext))
        return cert, key


# ---- packages ---------------------------------------------------------------

class Packages:
    """The files the servers serve, made in @root with dfota-pack (@pack):

      update.pkg     OLD -> NEW (about 370 KB), updates a default BG95-M3
      big.pkg        OLD -> NEW with a 3 MB incompressible target (~3 MB):
                     many progress steps; updates a BG95-M3 too
      between.pkg    OLD -> NEW, 7.25 MB: above BG95-M1's slot (7040 KiB),
                     within BG95-M3's (7296 KiB); valid for a BG95-M3
      corrupt.pkg    update.pkg with its middle byte flipped
      truncated.pkg  the first two thirds of update.pkg
      random.bin     200 000 bytes of noise (not a package)
      toolarge.bin   SLOT_M3 + 1 bytes (sparse)

    @names limits which are made (the benchmark needs only between.pkg)."""

    ALL = ("update.pkg", "big.pkg", "between.pkg", "corrupt.pkg", "truncated.pkg",
           "random.bin", "toolarge.bin")

    def __init__(self, root: Path, pack: Path, names=ALL):
        self.dir = Path(root)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pack = Path(pack)
        rnd = random.Random(10)
        want = set(names)
        if want & {"update.pkg", "corrupt.pkg", "truncated.pkg"}:
            self._build("update.pkg")
            data = bytearray(self.data("update.pkg"))
            data[len(data) // 2] ^= 0x01
            (self.dir / "corrupt.pkg").write_bytes(bytes(data))
            (self.dir / "truncated.pkg").write_bytes(self.data("update.pkg")[:len(data) * 2 // 3])
        if "big.pkg" in want:
            self._build("big.pkg", rnd.randbytes(3_000_000))
        if "between.pkg" in want:
            self._build("between.pkg", rnd.randbytes(7_250_000))
            assert SLOT_M1 < self.size("between.pkg") <= SLOT_M3, self.size("between.pkg")
        if "random.bin" in want:
            (self.dir / "random.bin").write_bytes(rnd.randbytes(200_000))
        if "toolarge.bin" in want:
            with open(self.dir / "toolarge.bin", "wb") as f:
                f.truncate(SLOT_M3 + 1)

    def _build(self, name, target=None):
        out = self.dir / name
        cmd = [str(self.pack), "build", "--from", OLD, "-o", str(out)]
        if target is None:
            cmd += ["--to", NEW]
        else:
            image = self.dir / (name + ".target")
            image.write_bytes(target)
            cmd += ["--to-image", str(image), "--to-version", NEW]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        if target is not None:
            image.unlink()

    def path(self, name) -> Path:
        return self.dir / name

    def size(self, name) -> int:
        return (self.dir / name).stat().st_size

    def data(self, name) -> bytes:
        return (self.dir / name).read_bytes()


# ---- nginx ------------------------------------------------------------------

REDIRECT_CODES = (301, 302, 303, 307, 308)


class Nginx:
    """nginx in the foreground (daemon off, master_process off: one process,
    no user switch, so it runs the same as root and as anyone else), with a
    generated config, its pid file, logs and temp paths in @workdir, serving
    @root. Four servers on free loopback ports (port["http"] ...):
    "http" plain; "https" with certs.server (localhost, 127.0.0.1, ::1);
    "wrongname" with certs.wrong_name (wrong.example only); "mtls" with
    certs.server and a client certificate of certs.client_ca required.
    Each also listens on [::1] when the machine has it ("localhost" may
    resolve there first). TLS 1.2 and 1.3."""

    SERVERS = ("http", "https", "wrongname", "mtls")

    def __init__(self, workdir: Path, root: Path, certs: Certs):
        self.dir = Path(workdir)
        self.root = Path(root)
        self.certs = certs
        self.proc = None
        self.port = {}
        self.ipv6 = has_ipv6_loopback()
        self.error_log = self.dir / "error.log"
        self.access_log = self.dir / "access.log"
        self.conf = self.dir / "nginx.conf"

    # -- lifecycle ------------------------------------------------------
    def start(self, attempts=5):
        self.dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            self.port = {name: free_port() for name in self.SERVERS}
            if len(set(self.port.values())) != len(self.SERVERS):
                continue
            self.conf.write_text(self._config())
            self.error_log.write_text("")
            self.proc = subprocess.Popen(
                ["nginx", "-p", str(self.dir), "-c", str(self.conf), "-e", str(self.error_log)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                for port in self.port.values():
                    wait_listening(port, self.proc, log=self.log)
                return self
            except RuntimeError:
                self._kill()
                if "Address already in use" not in self.log() or attempt == attempts - 1:
                    raise
        raise RuntimeError("no free ports for nginx")

    def stop(self):
        """SIGTERM (a fast shutdown: open connections are dropped), wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=READY_DEADLINE)
            except subprocess.TimeoutExpired:
                self._kill()
        self.proc = None

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        err = self.proc.stderr.read().decode(errors="replace") \
            if self.proc is not None and self.proc.poll() is not None and self.proc.stderr else ""
        text = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
        return err + text

    # -- what tests use -------------------------------------------------
    def url(self, path, server="http", host="127.0.0.1"):
        """The URL of @path on @server; host "localhost" or "[::1]" to
        name the server another way."""
        scheme = "http" if server == "http" else "https"
        return f"{scheme}://{host}:{self.port[server]}{path}"

    def requests(self):
        """The access log so far: one (server port, "METHOD URI PROTO",
        status, Host header) per request, in order."""
        out = []
        if self.access_log.exists():
            for line in self.access_log.read_text().splitlines():
                port, request, status, host = line.split("\t")
                out.append((int(port), request, int(status), host))
        return out

    # -- the config -----------------------------------------------------
    def _listen(self, name, ssl):
        extra = " ssl" if ssl else ""
        out = f"        listen 127.0.0.1:{self.port[name]}{extra};\n"
        if self.ipv6:
            out += f"        listen [::1]:{self.port[name]}{extra};\n"
        return out

    def _locations(self):
        root = str(self.root)
        redirects = ""
        for n in range(1, 9):
            target = "/pkg/update.pkg" if n == 1 else f"/redirect/{n - 1}"
            code = REDIRECT_CODES[n % len(REDIRECT_CODES)]
            redirects += f"        location = /redirect/{n} {{ return {code} {target}; }}\n"
        return f"""
        location /pkg/ {{ alias {root}/; }}
        location /chunked/ {{ alias {root}/; ssi on; ssi_types *; }}
        location /slow/ {{ alias {root}/; limit_rate_after 64k; limit_rate 256k; }}
        location = /gone {{ return 410; }}
        location = /error {{ return 500; }}
        location = /r/3 {{ return 301 /r/2; }}
        location = /r/2 {{ absolute_redirect off; return 302 /r/1; }}
        location = /r/1 {{ return 307 $scheme://$http_host/pkg/update.pkg; }}
{redirects}        location = /loop {{ return 302 /loop; }}
        location / {{ return 404; }}
"""

    def _config(self):
        d = self.dir
        c = self.certs
        tls = "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        locs = self._locations()

        def server(name, ssl="", cert=None):
            body = self._listen(name, bool(ssl or cert))
            if cert:
                body += (tls + f"        ssl_certificate {cert[0]};\n"
                               f"        ssl_certificate_key {cert[1]};\n")
            return f"    server {{\n{body}{ssl}{locs}    }}\n"

        # nginx alone finishes the handshake without a client certificate
        # and answers 400; "Require" makes the handshake itself fail, as a
        # server that insists on mutual TLS does
        mtls = (f"        ssl_verify_client on;\n"
                f"        ssl_client_certificate {c.client_ca[0]};\n"
                f"        ssl_verify_depth 2;\n"
                f"        ssl_conf_command VerifyMode Require;\n")
        return f"""# generated by tests/e2e/peers.py
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format peers "$server_port\\t$request\\t$status\\t$http_host";
    access_log {self.access_log} peers;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 5s;
{server("http")}{server("https", cert=c.server)}{server("wrongname", cert=c.wrong_name)}\
{server("mtls", ssl=mtls, cert=c.server)}}}
"""


# ---- the Python server ------------------------------------------------------

class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        peer = self.server.peer
        conn = self.request
        conn.settimeout(READY_DEADLINE)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
                if len(head) > 65536:
                    return
        except OSError:
            return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        path = parts[1] if len(parts) == 3 else ""
        with peer.lock:
            peer.requests.append(request_line)
        try:
            peer.respond(conn, path)
        except OSError:
            pass  # the client went away: that is its right


class PyHttp:
    """A threading HTTP/1.1 server on 127.0.0.1 (a port of its own) for
    the responses nginx cannot be made to give (see the module's docstring),
    serving the files of @root. stop() wakes every stalled connection and
    joins the server. requests holds the request lines seen; stalled is set
    once a stall has sent all it will send."""

    CHUNK = 16384

    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests = []
        self.lock = threading.Lock()
        self.stalled = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self.server = None
        self.thread = None

    def start(self):
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.peer = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        wait_listening(self.port)
        return self

    def stop(self):
        os.write(self._wake_w, b"x")  # every hold() returns
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(READY_DEADLINE)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.server = None

    def url(self, path, host="127.0.0.1"):
        return f"http://{host}:{self.port}{path}"

    # -- responses ------------------------------------------------------
    def _file(self, name):
        path = self.root / name
        return path.read_bytes() if "/" not in name and path.is_file() else None

    def hold(self, conn):
        """Blocks until the client closes (its end reads as EOF) or stop()."""
        self.stalled.set()
        while True:
            r, _, _ = select.select([conn, self._wake_r], [], [])
            if self._wake_r in r:
                return
            try:
                if not conn.recv(4096):
                    return
            except OSError:
                return

    def respond(self, conn, path):
        kind, _, name = path.lstrip("/").partition("/")
        if kind == "malformed":
            conn.sendall({
                "status": b"HELLO THERE, THIS IS NOT HTTP\r\n\r\n",
                "header": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nthis is no header\r\n\r\n"
                          b"0123456789",
                "length": b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n0123456789ab",
            }.get(name, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
            return
        if kind == "silent":
            self.hold(conn)
            return
        data = self._file(name)
        if data is None or kind not in ("ok", "cut", "cutchunk", "stall"):
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        half = len(data) // 2
        if kind == "cutchunk":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(0, half, self.CHUNK):
                piece = data[i:min(i + self.CHUNK, half)]
                conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            conn.sendall(b"%x\r\n" % self.CHUNK + data[half:half + self.CHUNK // 2])
            conn.shutdown(socket.SHUT_WR)
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(data))
        if kind == "ok":
            conn.sendall(data)
        elif kind == "cut":
            conn.sendall(data[:half])
            conn.shutdown(socket.SHUT_WR)
        else:  # stall
            conn.sendall(data[:half])
            self.hold(conn)
