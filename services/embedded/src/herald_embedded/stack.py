"""`herald-stack`: the production layout as separate processes on PostgreSQL and Redis —
gunicorn API, a `dramatiq` service per queue type, scheduler. `make stack` runs it by hand; the end-to-end
tests drive the same class.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

BIN = Path(sys.executable).parent
#: The worker services besides the publisher and the token-refresher, by command suffix.
WORKER_SERVICES = ("content", "approval", "image", "analytics", "webhooks")
T = TypeVar("T")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], T], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `check` until it returns something truthy; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)


def die_with_parent() -> Callable[[], None] | None:
    """What a child runs before its program so that it gets SIGTERM when the process that
    started it dies, however it dies (Linux's PR_SET_PDEATHSIG): each child is in a session of
    its own, so a stack killed with SIGKILL would otherwise leave its services running."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


@dataclass
class Stack:
    """Herald's services as separate processes sharing one database and one Redis."""

    database_url: str
    redis_url: str
    namespace: str
    logdir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_key: str | None = None
    #: Where each worker service and scheduler serves /metrics (the API serves its own).
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics_url(self, name: str) -> str:
        """The /metrics URL of process `name` (the API's for "api")."""
        if name == "api":
            return f"{self.base_url}/metrics"
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "HERALD_ENV": "test",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "HERALD_BROKER_NAMESPACE": self.namespace,
                "API_HOST": "127.0.0.1",
                "API_PORT": str(self.port),
                "SCHEDULER_TICK_SECONDS": "0.1",
                "PYTHONUNBUFFERED": "1",
                "LOG_LEVEL": "INFO",
            }
        )
        env.update(self.env_overrides)
        return env

    def _spawn(self, name: str, argv: list[str], *, metrics: bool = False) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        if metrics:  # each process its own port, so several can run on one machine
            self.metrics_ports[name] = free_port()
            env.update({"METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(self.metrics_ports[name])})
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115  (owned by the child)
        self.procs[name] = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # noqa: PLW1509  (only prctl, before exec)
        )

    def migrate(self) -> None:
        subprocess.run([str(BIN / "herald-admin"), "migrate"], env=self.env(), check=True)

    def create_tenant(self, name: str = "e2e", *, admin: bool = False) -> str:
        """A new tenant's API key, made by the admin CLI."""
        argv = [str(BIN / "herald-admin"), "create-tenant", "--name", name]
        out = subprocess.run(
            argv + (["--admin"] if admin else []),
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return str(json.loads(out.strip().splitlines()[-1])["api_key"])

    def start_api(self) -> None:
        import herald_api

        conf = Path(herald_api.__file__).parent / "gunicorn_conf.py"
        self._spawn(
            "api",
            [str(BIN / "gunicorn"), "-c", str(conf), "herald_api.app:get_app()"],
        )

    def start_publisher(self) -> None:
        self._spawn("publisher", [str(BIN / "herald-publisher")], metrics=True)

    def start_token_refresher(self, name: str = "token-refresher") -> None:
        self._spawn(name, [str(BIN / "herald-token-refresher")], metrics=True)

    def start_worker(self, service: str, name: str | None = None) -> None:
        """Start worker service `herald-{service}` (content, approval, image, analytics…)."""
        self._spawn(name or service, [str(BIN / f"herald-{service}")], metrics=True)

    def start_scheduler(self, name: str = "scheduler") -> None:
        self._spawn(name, [str(BIN / "herald-scheduler")], metrics=True)

    def start(self, services: Sequence[str] = WORKER_SERVICES) -> Stack:
        """Migrate, start the API, publisher, token-refresher, scheduler and `services`, and
        wait until the API is ready; on failure, stop whatever was started."""
        self.migrate()
        try:
            self.start_api()
            self.start_publisher()
            self.start_token_refresher()
            for service in services:
                self.start_worker(service)
            self.start_scheduler()
            self.wait_ready()
            self.api_key = self.create_tenant()
        except BaseException:
            # A scheduler left running would go on dispatching from the shared database.
            self.stop_all()
            raise
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            try:
                return httpx.get(f"{self.base_url}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=timeout, interval=0.2, what="the API to be ready")

    def client(self, api_key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key or self.api_key}"},
            timeout=10,
        )

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop process `name`: SIGKILL kills its whole process group at once; another signal
        goes to the process alone, which passes it on to its own children (gunicorn's and
        Dramatiq's workers, which a second signal would kill mid-job), and the group is
        killed if it has not stopped after `timeout` seconds."""
        self._signal(name, sig)
        self._reap(name, time.monotonic() + timeout)

    def stop_all(self, timeout: float = 20) -> None:
        """Stop every process at once (jobs in flight finish), each within `timeout` seconds."""
        names = list(self.procs)
        for name in names:
            self._signal(name, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            self._reap(name, deadline)

    def _signal(self, name: str, sig: int) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)

    def _reap(self, name: str, deadline: float) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Whatever is left of the group (a child that outlived its parent) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    """`make stack`: run the multi-process layout in the foreground until Ctrl-C or SIGTERM."""
    import tempfile

    from herald_common.db import ensure_database
    from herald_common.stopping import STOP_SIGNALS

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # While starting, a signal interrupts the start; the processes already running are stopped.
    signal.signal(signal.SIGTERM, interrupt)
    stack = Stack(
        database_url=os.environ["DATABASE_URL"],
        redis_url=os.environ["REDIS_URL"],
        namespace=os.environ.get("HERALD_BROKER_NAMESPACE", "dramatiq"),
        logdir=Path(tempfile.mkdtemp(prefix="herald-stack-")),
        port=int(os.environ.get("API_PORT", "8000")),
    )
    try:
        if ensure_database(stack.database_url):
            print(f"created the database {stack.database_url.rsplit('/', 1)[-1]}", flush=True)
        stack.start()
        # An operator's key besides the tenant's: the console and /v1/admin/ take only these.
        admin_key = stack.create_tenant("operators", admin=True)
        print(f"Herald stack up: API {stack.base_url} (docs {stack.base_url}/docs)")
        print(f"API key: {stack.api_key} (a tenant's)")
        print(f"console: {stack.base_url}/admin (sign in with the admin key)")
        print(f"admin key: {admin_key}\nlogs: {stack.logdir}", flush=True)
        for name in ("api", *stack.metrics_ports):
            print(f"metrics: {name:<16} {stack.metrics_url(name)}", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        received = signal.sigwait(STOP_SIGNALS)
        print(f"{signal.Signals(received).name}: stopping (jobs in flight finish)", flush=True)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        # Once stopping, more signals (uv forwards Ctrl-C, a terminal sends it again) wait.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        stack.stop_all()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
