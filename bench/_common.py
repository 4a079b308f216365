"""Helpers shared by the benchmarks (bench/dispatch, bench/claim, bench/crash, bench/pipeline …).

Imported by scripts that have already re-executed themselves under .venv/bin/python (see
`reexec_into_venv`). Nothing here runs at import time except constants. Standard library plus
what the project already depends on (psycopg2, redis, cryptography, celery, Django).
"""

import contextlib
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
# The machine's PostgreSQL. A bench that runs its own server (bench/chaos restarts it) passes its own
# dict of the same shape as `pg=` to the helpers below.
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
CPU_COUNT = os.cpu_count() or 2


def reexec_into_venv(script: str) -> None:
    """Run the calling script under the project's virtualenv (no-op when already there)."""
    if Path(sys.prefix).resolve() == VENV.resolve() or os.environ.get("BENCH_NO_REEXEC"):
        return
    venv_python = VENV / "bin" / "python"
    if not venv_python.exists():
        sys.exit(f"{script}: {venv_python} is missing. Create it first: make install (or python3.11 -m venv .venv "
                 "&& .venv/bin/pip install -e '.[bench]')")
    os.execv(str(venv_python), [str(venv_python), str(Path(sys.argv[0]).resolve()), *sys.argv[1:]])  # noqa: S606


def log(message: str) -> None:
    print(message, flush=True)


class SetupError(Exception):
    pass


def run(cmd: list[str], env: dict | None = None, what: str = "") -> str:
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"{what or cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def database_url(db: str, pg: dict[str, str] | None = None) -> str:
    pg = pg or PG
    return f"postgres://{pg['user']}@{pg['host']}:{pg['port']}/{db}"


# --citus: the local Citus cluster of ../shared/tools/citus-cluster (a coordinator and its workers, built and
# started on first use), in place of the machine's PostgreSQL. Its databases are made by the cluster tool, so
# that Citus is in them on every node; migration lifecycle 0013 then distributes the tables by store.
CITUS_DIR = Path(os.environ.get("CITUS_DIR", "/tmp/citus-cluster"))  # noqa: S108 - the cluster tool's default
CITUS = {"host": "127.0.0.1", "port": os.environ.get("CITUS_PORT", "5440"), "user": "postgres"}


def citus_cluster() -> str:
    found = os.environ.get("CITUS_CLUSTER") or next(
        (str(path) for path in (ROOT.parent / "shared/tools/citus-cluster", ROOT.parent.parent / "shared/tools/citus-cluster")
         if path.exists()), "")
    if not found:
        raise SetupError("--citus: no citus-cluster tool at ../shared/tools/ (set CITUS_CLUSTER)")
    return found


def add_citus_option(parser) -> None:
    parser.add_argument("--citus", action="store_true",
                        help="run on the local Citus cluster (coordinator :5440 + 2 workers), distributed by store")


def use_citus() -> dict[str, str]:
    """Point the bench at the Citus coordinator (started if it is not running); returns its `pg` dict."""
    if subprocess.run(["pg_isready", "-q", "-h", CITUS["host"], "-p", CITUS["port"]]).returncode != 0:
        run([citus_cluster(), "start"], what="citus-cluster start")
    PG.update(CITUS)
    return PG


def citus_ports() -> list[str]:
    workers = int((CITUS_DIR / "workers").read_text()) if (CITUS_DIR / "workers").exists() else 2
    return [str(int(CITUS["port"]) + n) for n in range(workers + 1)]


def fresh_database(db: str, pg: dict[str, str] | None = None) -> None:
    pg = pg or PG
    base = ["-h", pg["host"], "-p", pg["port"], "-U", pg["user"]]
    if pg["port"] == CITUS["port"]:
        for port in citus_ports():
            run(["dropdb", "-h", pg["host"], "-p", port, "-U", pg["user"], "--if-exists", "--force", db], what="dropdb")
        run([citus_cluster(), "createdb", db], what="citus-cluster createdb")
        return
    run(["dropdb", *base, "--if-exists", "--force", db], what="dropdb")
    run(["createdb", *base, db], what="createdb")


def drop_database(db: str, pg: dict[str, str] | None = None) -> None:
    pg = pg or PG
    base = ["-h", pg["host"], "-p", pg["port"], "-U", pg["user"]]
    run(["dropdb", *base, "--if-exists", "--force", db], what="dropdb")


def pg_connect(db: str, autocommit: bool = True, pg: dict[str, str] | None = None):
    """A plain psycopg2 connection (bulk SQL, checks); not Django's."""
    import psycopg2

    pg = pg or PG
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], dbname=db)
    conn.autocommit = autocommit
    return conn


def app_env(db: str, redis_url: str, *, pg: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a production-profile process (worker, manage.py) against the bench database."""
    from cryptography.fernet import Fernet

    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "LIFECYCLE_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LIFECYCLE_PROFILE": "production",
        "DATABASE_URL": database_url(db, pg),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ANYMAIL_WEBHOOK_SECRET": "bench:" + secrets.token_urlsafe(24),
        "ALLOWED_HOSTS": "127.0.0.1",
        "PUBLIC_BASE_URL": "https://mail.bench.example",
        "DEBUG": "0",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        # The bench stores send from example domains nobody can verify here (no DNS): the production
        # profile would hold every email for it. The sending-domain rule has its own tests.
        "SENDING_DOMAIN_REQUIRED": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        # bench/null_esp.py is imported as `bench.null_esp` by the workers.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    })
    env.update(extra)
    return env


def migrate(env: dict[str, str]) -> None:
    run([str(VENV / "bin" / "python"), "manage.py", "migrate", "--noinput", "--skip-checks"], env, "manage.py migrate")


def django_setup(env: dict[str, str]) -> None:
    """Configure Django in this process with the same environment the workers get."""
    os.environ.update(env)
    import django

    django.setup()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (Linux /proc)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


class CeleryWorker:
    """One `celery worker` process (optionally with embedded beat) in its own process group.

    With beat=False and a CeleryBeat beside it, the worker's children are its pool processes only
    (an embedded beat is one more child, indistinguishable from them by pid or command line).
    """

    def __init__(self, env: dict[str, str], workdir: Path, *, pool: str = "prefork", concurrency: int = 2,
                 beat: bool = True, name: str = "worker", queues: str | None = None, loglevel: str = "WARNING",
                 nice: int = 0):
        self.env, self.workdir, self.pool, self.concurrency, self.nice = env, workdir, pool, concurrency, nice
        self.beat, self.name, self.queues, self.loglevel = beat, name, queues, loglevel
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / f"{name}.log"
        self.starts = 0

    @property
    def command(self) -> list[str]:
        if self.pool == "beat":
            return [str(VENV / "bin" / "python"), "-m", "celery", "-A", "config", "beat",
                    f"--loglevel={self.loglevel}", "--schedule", str(self.workdir / f"{self.name}-schedule")]
        cmd = [str(VENV / "bin" / "python"), "-m", "celery", "-A", "config", "worker",
               f"--pool={self.pool}", f"--concurrency={self.concurrency}", f"--loglevel={self.loglevel}",
               "--without-mingle", "--without-gossip", "--without-heartbeat", "-n", f"{self.name}@%h"]
        if self.beat:
            cmd += ["--beat", "--schedule", str(self.workdir / f"{self.name}-beat-schedule")]
        if self.queues:
            cmd += ["-Q", self.queues]
        return ["nice", "-n", str(self.nice), *cmd] if self.nice else cmd

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as out:
            out.write(f"\n===== start #{self.starts} =====\n".encode())
        self.proc = subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pool_pids(self) -> list[int]:
        return children(self.proc.pid) if self.alive() else []

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the log says the worker is ready (celery prints 'ready.' at INFO; we also accept pool children)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise SetupError(f"{self.name} exited with {self.proc.returncode if self.proc else '?'}:\n"
                                 f"{self.log_tail()}")
            if self.pool == "prefork":
                if len(self.pool_pids()) >= self.concurrency:
                    return
            elif b"ready." in self.log_path.read_bytes()[-4000:] or self.loglevel not in ("INFO", "DEBUG"):
                time.sleep(2.0)  # threads pool: no children to watch; give it the import time
                return
            time.sleep(0.1)
        raise SetupError(f"{self.name} not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL, group: bool = True) -> None:
        """Kill the whole process group (main process, pool children, embedded beat)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                os.kill(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (SIGTERM), SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            self._reap_group()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._reap_group()

    def _reap_group(self) -> None:
        """Pool children outlive a SIGKILLed parent for a moment; make sure none is left behind."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def logged_errors(self) -> list[str]:
        text = ""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines()
                if ("Traceback" in line or "ERROR/" in line or "CRITICAL/" in line)
                and "WorkerLostError" not in line]


class CeleryBeat(CeleryWorker):
    """A separate `celery beat` process in its own process group."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str = "beat", loglevel: str = "WARNING"):
        super().__init__(env, workdir, pool="beat", concurrency=0, beat=False, name=name, loglevel=loglevel)


# --- shared by bench/pipeline: a port, gunicorn, and CPU per kind of process ----------------------

TICK = os.sysconf("SC_CLK_TCK")


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children(current)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU (user + system) used so far by the process tree under `pid`, exited processes included.

    Each live process adds its own time and its reaped children's (cutime, cstime); a process that
    exited and was reaped inside the tree is in its parent's cutime, so nothing is counted twice.
    Sampled before and after a phase, the difference is what the tree used meanwhile."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15]) / TICK
    return total


class PgBackendCpu:
    """CPU seconds of the PostgreSQL processes serving database `db` (backends, and autovacuum workers
    apart), found by their process title in /proc and sampled every `interval` s by a thread.

    Backends come and go (CONN_MAX_AGE): one first seen after the start counts from zero, and the
    last fraction of a second of one that exits between two samples is missed."""

    def __init__(self, db: str, exclude: tuple[int, ...] = (), interval: float = 0.5):
        import threading

        self.needle, self.exclude, self.interval = f" {db} ".encode(), set(exclude), interval
        self.seen: dict[int, float] = {}
        self.used = {"pg": 0.0, "autovacuum": 0.0}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self._tick(first=True)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _scan(self) -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in self.exclude:
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                text = Path(f"/proc/{entry}/stat").read_text()
                if text[text.find("(") + 1:text.rfind(")")] != "postgres":
                    continue
                title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ") + b" "
                if self.needle in title:
                    fields = text[text.rfind(")") + 2:].split()
                    kind = "autovacuum" if b"autovacuum" in title else "pg"
                    found[int(entry)] = (kind, (int(fields[11]) + int(fields[12])) / TICK)
        return found

    def _tick(self, first: bool = False) -> None:
        found = self._scan()
        for pid, (kind, cpu) in found.items():
            previous = self.seen.get(pid)
            if previous is None and first:
                continue
            self.used[kind] += cpu - (previous or 0.0)
        self.seen = {pid: cpu for pid, (_kind, cpu) in found.items()}

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.lock:
                self._tick()

    def sample(self) -> dict[str, float]:
        """CPU seconds so far, by kind ("pg", "autovacuum"); subtract two samples for a phase."""
        with self.lock:
            self._tick()
            return dict(self.used)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


class Gunicorn:
    """`gunicorn config.wsgi:application` on 127.0.0.1:`port` in its own process group; `start` waits
    until an authenticated POST /api/v1/ping with `api_key` answers 200."""

    def __init__(self, env: dict[str, str], workdir: Path, port: int, *, workers: int = 4,
                 worker_class: str = "sync", threads: int = 1):
        self.env, self.port, self.workers, self.worker_class, self.threads = env, port, workers, worker_class, threads
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "gunicorn.log"

    @property
    def command(self) -> list[str]:
        cmd = [str(VENV / "bin" / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
               "--workers", str(self.workers), "--worker-class", self.worker_class, "--keep-alive", "30",
               "--timeout", "120", "--graceful-timeout", "10", "--log-level", "warning",
               "--error-logfile", str(self.log_path)]
        return cmd + (["--threads", str(self.threads)] if self.worker_class == "gthread" else [])

    def start(self, api_key: str, timeout: float = 60.0) -> None:
        import http.client

        self.proc = subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("POST", "/api/v1/ping", b"{}", headers)
                response = conn.getresponse()
                payload = response.read()
                conn.close()
                if response.status == 200:
                    return
                raise SetupError(f"ping answered {response.status}: {payload[:300]!r}\n{self.log_tail()}")
            time.sleep(0.2)
        raise SetupError(f"gunicorn did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def logged_errors(self) -> list[str]:
        text = ""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if "Traceback" in line or "[ERROR]" in line or "WORKER TIMEOUT" in line]
