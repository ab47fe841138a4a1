#!/usr/bin/env python3
"""Aira's local supervisor: what `scripts/run` starts, watches, scales and stops on one machine.

Production scaling belongs to an orchestrator (docs/kubernetes.md); this is the one-machine loop an
operator needs with `scripts/run`, and nothing more. Only the Python standard library.

    supervisor.py up --bin DIR [--only a,b] [--scale svc=N ...] [--detach]
    supervisor.py wait [--timeout S]        until every instance answers /health/ready
    supervisor.py status [--json]
    supervisor.py scale SERVICE N
    supervisor.py restart SERVICE
    supervisor.py stop

`up` starts every instance as a child in its own process group (logs in AIRA_LOG_DIR/<exe>-<port>.log),
restarts one that exits without being asked to (backoff 1 s, 2 s, 4 s … 30 s; after
AIRA_RUN_MAX_CRASHES crashes in a row, each within AIRA_RUN_STABLE_AFTER of its start, the instance is
left down as `failed` and reported), and answers the other commands on a Unix socket in AIRA_RUN_DIR.
Its state (every instance's pid and the pid's start time) is written to AIRA_RUN_DIR/supervisor.json
on every change, so `stop` can still stop every instance it started after the supervisor itself died,
and never a process it did not start (a pid whose start time differs is someone else's).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

ENV = os.environ
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = ENV.get("AIRA_DATA", os.path.join(ROOT, ".data"))
RUN_DIR = ENV.get("AIRA_RUN_DIR", os.path.join(DATA, "run"))
LOG_DIR = ENV.get("AIRA_LOG_DIR", os.path.join(DATA, "logs"))
STATE = os.path.join(RUN_DIR, "supervisor.json")
SOCKET = os.path.join(RUN_DIR, "supervisor.sock")


def seconds(name: str, default: float) -> float:
    """A duration variable: `30s`, `500ms`, `2m` or a bare number of seconds."""
    text = ENV.get(name, "").strip()
    if not text:
        return default
    units = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    for suffix, factor in units:
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * factor
    if text.replace(".", "", 1).isdigit():
        return float(text)
    raise SystemExit(f"{name}={text!r}: expected a duration such as 500ms, 30s or 2m")


PORT_BASE = int(ENV.get("AIRA_RUN_PORT_BASE", "8080"))
BACKOFF = seconds("AIRA_RUN_RESTART_BACKOFF", 1.0)
BACKOFF_MAX = seconds("AIRA_RUN_RESTART_BACKOFF_MAX", 30.0)
STABLE_AFTER = seconds("AIRA_RUN_STABLE_AFTER", 60.0)
MAX_CRASHES = int(ENV.get("AIRA_RUN_MAX_CRASHES", "5"))
# How long a stop waits for graceful exit beyond the service's own AIRA_SHUTDOWN_TIMEOUT.
STOP_MARGIN = 5.0


@dataclass(frozen=True)
class Service:
    """One kind of process: `name` is what operators type (`thumbnail-worker`)."""
    name: str
    executable: str
    port_offset: int
    # The service's own default AIRA_SHUTDOWN_TIMEOUT (a stop waits that plus STOP_MARGIN).
    shutdown_timeout: float = 25.0
    # Consumes a queue: it is up when it answers /health/ready and its consumers are registered.
    consumes: bool = True
    helper: bool = False  # a development stand-in (mock LLM, SMTP), not an Aira service

    @property
    def first_port(self) -> int:
        return PORT_BASE + self.port_offset


# The order in which `up` starts them; `stop` stops gateways first (no new requests), then the rest.
SERVICES = [
    Service("mock-llm", "aira-mock-llm", 10, consumes=False, helper=True),
    Service("smtp-dev", "smtp-dev", -1, consumes=False, helper=True),
    # Prometheus (Debian's), with scripts/run --observe: scrapes every instance (the targets
    # file below follows scaling) and RabbitMQ, and evaluates compose/prometheus/alerts.yml.
    Service("prometheus", "prometheus", -1, consumes=False, helper=True),
    Service("auth", "aira-auth", 1),
    Service("gpt-proxy", "aira-gpt-proxy", 2),
    Service("gateway", "aira-gateway", 0, consumes=False),  # only its own RPC reply queues
    Service("audit-writer", "aira-audit-writer", 3),
    Service("thumbnail-worker", "aira-thumbnail-worker", 4, shutdown_timeout=60.0),
    Service("email-worker", "aira-email-worker", 5),
    Service("analyzer", "aira-analyzer", 6),
]
BY_NAME = {s.name: s for s in SERVICES} | {s.executable: s for s in SERVICES}
# Extra instances take the first free port from here up.
EXTRA_PORTS = range(PORT_BASE + 20, PORT_BASE + 120)


def smtp_port() -> int:
    return int(ENV.get("AIRA_RUN_SMTP_PORT", "1025"))


def prometheus_port() -> int:
    return int(ENV.get("AIRA_RUN_PROMETHEUS_PORT", "9090"))


TARGETS = os.path.join(RUN_DIR, "prometheus-targets.json")


def prometheus_config() -> str:
    """Prometheus's configuration for the local stack (written next to the state file)."""
    rules = os.path.join(ROOT, "compose/prometheus/alerts.yml")
    rabbit = f"127.0.0.1:{ENV.get('AIRA_RABBITMQ_PROMETHEUS_PORT', '15692')}"
    path = os.path.join(RUN_DIR, "prometheus.yml")
    with open(path, "w") as f:
        f.write(f"""# Written by scripts/run --observe (scripts/lib/supervisor.py); compose has its own.
global: {{scrape_interval: {ENV.get('AIRA_RUN_SCRAPE_INTERVAL', '5s')}, evaluation_interval: 15s}}
rule_files: [{json.dumps(rules)}]
scrape_configs:
  - job_name: aira
    file_sd_configs: [{{files: [{json.dumps(TARGETS)}], refresh_interval: 5s}}]
  - job_name: rabbitmq
    metrics_path: /metrics/per-object
    static_configs: [{{targets: [{json.dumps(rabbit)}]}}]
""")
    return path


def service_named(name: str) -> Service:
    s = BY_NAME.get(name) or BY_NAME.get(f"aira-{name}")
    if s is None:
        names = ", ".join(x.name for x in SERVICES if not x.helper)
        raise UserError(f"unknown service {name!r} (one of: {names})")
    return s


class UserError(Exception):
    pass


# --- processes ---------------------------------------------------------------------------------

def pid_start_time(pid: int) -> int | None:
    """The pid's start time in clock ticks since boot (/proc/PID/stat field 22), or None when no
    such process runs. With the pid it names one process for good: pids are reused, start times not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # a zombie: it has exited
        return None
    return int(fields[19])


def same_process(pid: int | None, start: int | None) -> bool:
    return bool(pid) and start is not None and pid_start_time(pid) == start


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the services bind (NIO sets SO_REUSEADDR): a port whose connections are in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def duration_text(s: float) -> str:
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


# --- the supervisor -------------------------------------------------------------------------------

@dataclass
class Instance:
    service: Service
    index: int
    port: int
    state: str = "starting"  # starting, running, backoff, failed, stopping, stopped
    pid: int | None = None
    pid_start: int | None = None
    started_at: float | None = None  # wall clock of the current process's start
    restarts: int = 0
    crashes_in_a_row: int = 0
    last_exit: str | None = None
    wanted: bool = True
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return f"{self.service.executable}#{self.index}"

    @property
    def log_path(self) -> str:
        return os.path.join(LOG_DIR, f"{self.service.executable}-{self.port}.log")

    def record(self) -> dict:
        return {"service": self.service.name, "executable": self.service.executable, "instance": self.name,
                "index": self.index, "port": self.port, "state": self.state, "pid": self.pid,
                "pid_start": self.pid_start, "started_at": self.started_at, "restarts": self.restarts,
                "last_exit": self.last_exit, "log": self.log_path, "helper": self.service.helper,
                "consumer": self.service.consumes}


class Supervisor:
    def __init__(self, bin_dir: str, services: list[Service]):
        self.bin_dir = bin_dir
        self.services = services
        self.instances: list[Instance] = []
        self.started_at = time.time()
        self.stopping = False
        self.done = asyncio.Event()
        self.handlers: set[asyncio.Task] = set()  # commands being answered (stop's answer outlives the stop)
        self.log_file = open(os.path.join(LOG_DIR, "supervisor.log"), "a", buffering=1)

    # -- logging and state --

    def log(self, text: str, instance: Instance | None = None) -> None:
        line = f"[aira-run {time.strftime('%H:%M:%S')}] {text}"
        self.log_file.write(line + "\n")
        if sys.stderr.isatty() or ENV.get("AIRA_RUN_FOREGROUND") == "1":
            print(line, file=sys.stderr, flush=True)
        if instance is not None:  # the instance's own log says what happened to it, too
            self.note(instance, text)

    def note(self, instance: Instance, text: str) -> None:
        try:
            with open(instance.log_path, "a") as f:
                f.write(f"[aira-run {time.strftime('%Y-%m-%dT%H:%M:%S')}] {text}\n")
        except OSError:
            pass

    def state(self) -> dict:
        return {"supervisor": {"pid": os.getpid(), "pid_start": pid_start_time(os.getpid()), "started_at": self.started_at,
                                "bin": self.bin_dir, "port_base": PORT_BASE, "stopping": self.stopping,
                                "amqp_url_vhost": amqp_vhost()},
                "instances": [i.record() for i in self.instances]}

    def save(self) -> None:
        state = self.state()
        tmp = STATE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, STATE)
        # What Prometheus scrapes (file service discovery): every Aira instance, labelled with
        # its executable as `service` — the label the dashboards group by.
        targets = [{"targets": [f"127.0.0.1:{i.port}"], "labels": {"service": i.service.executable, "aira_instance": i.name}}
                   for i in self.instances if not i.service.helper and i.state in ("starting", "running")]
        with open(TARGETS + ".tmp", "w") as f:
            json.dump(targets, f, indent=1)
        os.replace(TARGETS + ".tmp", TARGETS)

    # -- one instance --

    def command(self, inst: Instance) -> tuple[list[str], dict[str, str]]:
        env = dict(ENV)
        env.pop("AIRA_RUN_FOREGROUND", None)
        env["AIRA_HTTP_PORT"] = str(inst.port)
        env["AIRA_INSTANCE"] = inst.name
        names = {s.name for s in self.services}
        if "mock-llm" in names:
            env.setdefault("AIRA_GPT_UPSTREAM_URL", f"http://127.0.0.1:{BY_NAME['mock-llm'].first_port}")
            # The mock's answers priced as a small hosted model's, so usage and the cost metrics
            # show money in development (gpt.md, "Budgets").
            env.setdefault("AIRA_GPT_PRICES", "mock-1=0.15/0.60")
        if "smtp-dev" in names:
            env["AIRA_SMTP_HOST"] = "127.0.0.1"
            env["AIRA_SMTP_PORT"] = str(smtp_port())
            env["AIRA_SMTP_TLS"] = "starttls"
        if inst.service.name == "smtp-dev":
            mail = ENV.get("AIRA_RUN_MAIL_DIR", os.path.join(DATA, "mail"))
            python = ENV.get("AIRA_PYTHON", sys.executable)
            script = ENV.get("AIRA_SMTP_SERVER_SCRIPT", os.path.join(ROOT, "scripts/lib/smtp_server.py"))
            return [python, script, "--port", str(inst.port), "--dir", mail], env
        if inst.service.name == "prometheus":
            storage = os.path.join(DATA, "prometheus")
            os.makedirs(storage, exist_ok=True)
            return [ENV.get("AIRA_PROMETHEUS_BIN", "prometheus"), f"--config.file={prometheus_config()}",
                    f"--storage.tsdb.path={storage}", "--storage.tsdb.retention.time=7d",
                    f"--web.listen-address=127.0.0.1:{inst.port}", "--web.cors.origin=.*"], env
        return [os.path.join(self.bin_dir, inst.service.executable)], env

    async def spawn(self, inst: Instance) -> None:
        argv, env = self.command(inst)
        log = open(inst.log_path, "ab")
        try:
            # A process group of its own: Ctrl-C reaches the supervisor only, which stops the
            # instances in order.
            inst.process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                                                                stderr=log, env=env, start_new_session=True)
        finally:
            log.close()
        inst.pid = inst.process.pid
        inst.pid_start = pid_start_time(inst.pid)
        inst.started_at = time.time()
        inst.state = "running"
        self.save()

    async def run_instance(self, inst: Instance) -> None:
        """Runs the instance until it is no longer wanted, restarting it when it exits on its own."""
        while inst.wanted:
            began = time.monotonic()
            try:
                await self.spawn(inst)
                if inst.restarts == 0 and inst.crashes_in_a_row == 0:
                    self.log(f"started {inst.name} (pid {inst.pid}, port {inst.port}, log {inst.log_path})", inst)
                else:
                    self.log(f"restarted {inst.name} (pid {inst.pid}, restart {inst.restarts})", inst)
                code = await inst.process.wait()
                exit_text = describe_exit(code)
            except OSError as e:  # cannot exec (binary missing, not executable)
                exit_text = f"cannot start: {e.strerror or e}"
            inst.process = None
            if not inst.wanted:
                inst.last_exit = exit_text
                break
            uptime = time.monotonic() - began
            inst.last_exit = exit_text
            inst.pid = inst.pid_start = None
            if uptime >= STABLE_AFTER:
                inst.crashes_in_a_row = 0
            inst.crashes_in_a_row += 1
            if inst.crashes_in_a_row >= MAX_CRASHES:
                inst.state = "failed"
                self.save()
                self.log(f"FAILED {inst.name}: {exit_text} after {uptime:.1f}s, crash {inst.crashes_in_a_row} in a row; "
                         f"left down (log {inst.log_path}; scripts/run restart {inst.service.name} tries again)", inst)
                return
            delay = min(BACKOFF * 2 ** (inst.crashes_in_a_row - 1), BACKOFF_MAX)
            inst.state = "backoff"
            self.save()
            self.log(f"{inst.name} exited unexpectedly ({exit_text} after {uptime:.1f}s); restarting in {delay:g}s", inst)
            inst.wake.clear()
            try:
                await asyncio.wait_for(inst.wake.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
            if inst.wanted:
                inst.restarts += 1
        inst.state = "stopped"
        self.save()

    def start_instance(self, service: Service, port: int | None = None) -> Instance:
        taken = {i.port for i in self.instances}
        index = max([i.index for i in self.instances if i.service == service], default=0) + 1
        if port is None:
            port = service.first_port if index == 1 and service.first_port not in taken else None
            if service.name == "smtp-dev":
                port = smtp_port()
            if service.name == "prometheus":
                port = prometheus_port()
        if port is None:
            port = next((p for p in EXTRA_PORTS if p not in taken and port_free(p)), None)
            if port is None:
                raise UserError(f"no free port in {EXTRA_PORTS.start}–{EXTRA_PORTS.stop - 1} for another {service.name}")
        inst = Instance(service, index, port)
        self.instances.append(inst)
        inst.task = asyncio.create_task(self.run_instance(inst))
        return inst

    async def stop_instance(self, inst: Instance, report) -> None:
        """Graceful stop: SIGTERM, the service's shutdown timeout plus a margin, then SIGKILL."""
        inst.wanted = False
        inst.wake.set()
        process = inst.process
        if process is None or process.returncode is not None:
            report(f"{inst.name}: was not running ({inst.state}{', last ' + inst.last_exit if inst.last_exit else ''})")
        else:
            inst.state = "stopping"
            self.save()
            limit = shutdown_timeout(inst.service) + STOP_MARGIN
            began = time.monotonic()
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                code = await asyncio.wait_for(process.wait(), timeout=limit)
                report(f"{inst.name} (pid {process.pid}, port {inst.port}): stopped, {describe_exit(code)} "
                       f"after {time.monotonic() - began:.1f}s")
            except asyncio.TimeoutError:
                os.kill(process.pid, signal.SIGKILL)
                await process.wait()
                report(f"{inst.name} (pid {process.pid}, port {inst.port}): still running after {limit:g}s, killed")
        if inst.task is not None:
            await inst.task
        inst.state = "stopped"
        self.note(inst, "stopped by the supervisor")

    # -- commands --

    async def scale(self, service: Service, count: int, report) -> None:
        if service.helper:
            raise UserError(f"{service.name} is a development helper; it runs once")
        if not 0 <= count <= 20:
            raise UserError("the count must be between 0 and 20")
        current = [i for i in self.instances if i.service == service]
        if count > len(current):
            new = [self.start_instance(service) for _ in range(count - len(current))]
            self.save()
            for inst in new:
                report(f"{inst.name}: starting on port {inst.port}")
            await self.report_up(new, report)
        else:
            extra = sorted(current, key=lambda i: i.index)[count:]
            # The newest go first; all at once, each with its own grace period.
            await asyncio.gather(*(self.stop_instance(i, report) for i in reversed(extra)))
            for i in extra:
                self.instances.remove(i)
            self.save()
        self.log(f"scaled {service.name} to {count}")
        report(f"{service.name}: {count} instance{'s' if count != 1 else ''}")

    async def report_up(self, new: list[Instance], report, timeout: float = 60) -> None:
        names = {i.name for i in new}
        began = time.monotonic()
        loop = asyncio.get_running_loop()
        while True:
            status = await loop.run_in_executor(None, gather_status, self.snapshot())
            pending = [i for i in status["instances"] if i["instance"] in names and not up(i)]
            if not pending:
                report(f"{', '.join(sorted(names))}: up after {time.monotonic() - began:.1f}s")
                return
            if time.monotonic() - began > timeout:
                report(f"not up after {timeout:g}s: " + ", ".join(f"{i['instance']} ({i['ready']})" for i in pending))
                return
            await asyncio.sleep(0.2)

    def snapshot(self) -> dict:
        return json.loads(json.dumps(self.state()))

    async def restart(self, service: Service, report) -> None:
        current = sorted((i for i in self.instances if i.service == service), key=lambda i: i.index)
        if not current:
            raise UserError(f"no instance of {service.name} runs (scripts/run scale {service.name} 1)")
        for old in current:  # one at a time: the others keep consuming
            await self.stop_instance(old, report)
            self.instances.remove(old)
            inst = Instance(service, old.index, old.port)
            self.instances.append(inst)
            inst.task = asyncio.create_task(self.run_instance(inst))
            report(f"{inst.name}: starting on port {inst.port}")
            self.save()
            await self.report_up([inst], report)

    async def stop_all(self, report) -> None:
        if self.stopping:
            report("already stopping")
            await self.done.wait()
            return
        self.stopping = True
        self.save()
        self.log("stopping every instance")
        first = [i for i in self.instances if i.service.name == "gateway"]
        rest = [i for i in self.instances if i not in first]
        for wave in (first, rest):
            await asyncio.gather(*(self.stop_instance(i, report) for i in wave))
        self.instances.clear()
        self.save()
        self.log("all instances stopped")
        self.done.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handlers.add(asyncio.current_task())
        try:
            await self.answer(reader, writer)
        finally:
            self.handlers.discard(asyncio.current_task())

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def report(line: str) -> None:
            self.log(line)
            writer.write((json.dumps({"log": line}) + "\n").encode())

        try:
            request = json.loads(await reader.readline())
            what = request.get("command")
            if what == "ping":
                pass
            elif self.stopping:
                raise UserError("the supervisor is stopping")
            elif what == "scale":
                await self.scale(service_named(request["service"]), int(request["count"]), report)
            elif what == "restart":
                await self.restart(service_named(request["service"]), report)
            elif what == "stop":
                await self.stop_all(report)
            else:
                raise UserError(f"unknown command {what!r}")
            writer.write((json.dumps({"ok": True}) + "\n").encode())
        except UserError as e:
            writer.write((json.dumps({"ok": False, "error": str(e)}) + "\n").encode())
        except Exception as e:  # a bug: say it, keep supervising
            self.log(f"command failed: {e!r}")
            writer.write((json.dumps({"ok": False, "error": repr(e)}) + "\n").encode())
        try:
            await writer.drain()
            writer.close()
        except ConnectionError:
            pass

    async def main(self, scale: dict[str, int]) -> int:
        if os.path.exists(SOCKET):
            os.unlink(SOCKET)
        server = await asyncio.start_unix_server(self.handle, path=SOCKET)
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        # SIGHUP: the terminal of a foreground run closed (a detached one has none).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop_requested.set)
        for service in self.services:
            for _ in range(scale.get(service.name, 1)):
                self.start_instance(service)
        self.save()
        self.log(f"supervising {len(self.instances)} instances (pid {os.getpid()}; scripts/run status)")
        waiter = asyncio.create_task(stop_requested.wait())
        done_waiter = asyncio.create_task(self.done.wait())
        await asyncio.wait([waiter, done_waiter], return_when=asyncio.FIRST_COMPLETED)
        if not self.done.is_set():
            await self.stop_all(lambda line: self.log(line))
        server.close()
        if self.handlers:
            await asyncio.wait(self.handlers, timeout=5)
        if os.path.exists(SOCKET):
            os.unlink(SOCKET)
        self.log("supervisor exits")
        return 0


def shutdown_timeout(service: Service) -> float:
    return seconds("AIRA_SHUTDOWN_TIMEOUT", service.shutdown_timeout) if not service.helper else 5.0


# --- reading the state, talking to the supervisor ---------------------------------------------------

def load_state() -> dict | None:
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None


def supervisor_alive(state: dict | None) -> bool:
    if not state:
        return False
    s = state["supervisor"]
    return same_process(s.get("pid"), s.get("pid_start"))


def send(command: dict, timeout: float | None = 600, echo=True) -> dict:
    """Sends one command; prints its progress lines; returns the final answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(SOCKET)
        s.sendall((json.dumps(command) + "\n").encode())
        buffered = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("the supervisor closed the connection without an answer")
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                message = json.loads(line)
                if "log" in message:
                    if echo:
                        print(message["log"], flush=True)
                else:
                    return message


def amqp_vhost() -> str:
    path = urllib.parse.urlparse(ENV.get("AIRA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


def management(path: str) -> object:
    url = urllib.parse.urlparse(ENV.get("AIRA_RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672"))
    base = f"{url.scheme}://{url.hostname}:{url.port or 15672}"
    request = urllib.request.Request(base + path)
    user, password = urllib.parse.unquote(url.username or "guest"), urllib.parse.unquote(url.password or "guest")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    with urllib.request.urlopen(request, timeout=3) as r:
        return json.load(r)


def ready(inst: dict) -> str:
    """`ready`, `not ready` (with the failing checks), `down` or `no answer`."""
    if not same_process(inst.get("pid"), inst.get("pid_start")):
        return "down"
    if inst["service"] == "smtp-dev":
        try:
            with socket.create_connection(("127.0.0.1", inst["port"]), timeout=2):
                return "ready"
        except OSError:
            return "no answer"
    path = "/-/ready" if inst["service"] == "prometheus" else "/health/ready"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{inst['port']}{path}", timeout=2) as r:
            return "ready" if r.status == 200 else f"not ready ({r.status})"
    except urllib.error.HTTPError as e:
        try:
            checks = json.load(e).get("checks", {})
            failing = ",".join(k for k, v in checks.items() if not v)
        except Exception:
            failing = ""
        return f"not ready ({failing or e.code})"
    except (OSError, ValueError):
        return "no answer"


def up(inst: dict) -> bool:
    """Running, ready, and (a consumer) consuming."""
    return inst["alive"] and inst["ready"] == "ready" and (not inst.get("consumer") or bool(inst["queues"]))


def gather_status(state: dict | None = None) -> dict:
    state = state if state is not None else load_state()
    alive = supervisor_alive(state)
    instances = state["instances"] if state else []
    with ThreadPoolExecutor(max_workers=8) as pool:
        readiness = list(pool.map(ready, instances))
    now = time.time()
    for inst, r in zip(instances, readiness):
        inst["alive"] = same_process(inst.get("pid"), inst.get("pid_start"))
        inst["ready"] = r
        inst["uptime_seconds"] = round(now - inst["started_at"], 1) if inst["alive"] and inst.get("started_at") else None
        inst["queues"] = []
    queues: list[dict] = []
    broker_error = None
    if instances:
        vhost = urllib.parse.quote(state["supervisor"].get("amqp_url_vhost") or amqp_vhost(), safe="")
        try:
            consumers = management(f"/api/consumers/{vhost}")
            # A consumer names its connection by address; the name the service gave it (AIRA_INSTANCE)
            # is the connection's user_provided_name.
            named = {c["name"]: c.get("user_provided_name") or "" for c in management(
                f"/api/vhosts/{vhost}/connections?columns=name,user_provided_name")}
            listed = {q["name"]: q for q in management(
                f"/api/queues/{vhost}?columns=name,messages,messages_ready,messages_unacknowledged,consumers,exclusive,type")}
            by_instance: dict[str, set[str]] = {}
            for c in consumers:
                connection = named.get((c.get("channel_details") or {}).get("connection_name") or "", "")
                queue = (c.get("queue") or {}).get("name", "")
                if queue in listed and not listed[queue].get("exclusive"):
                    by_instance.setdefault(connection, set()).add(queue)
            for inst in instances:
                names = set()
                for connection, qs in by_instance.items():
                    if connection == inst["instance"] or connection.startswith(inst["instance"] + " "):
                        names |= qs
                inst["queues"] = sorted(names)
            for name in sorted({q for inst in instances for q in inst["queues"]}):
                q = listed[name]
                dlq = listed.get(f"{name}.dlq")
                queues.append({"queue": name, "type": q.get("type"), "depth": q.get("messages", 0),
                               "ready": q.get("messages_ready", 0), "unacked": q.get("messages_unacknowledged", 0),
                               "consumers": q.get("consumers", 0),
                               "consumed_by": sorted(i["instance"] for i in instances if name in i["queues"]),
                               "dead_letters": dlq.get("messages", 0) if dlq else None})
        except (OSError, ValueError, KeyError) as e:
            broker_error = f"management API: {e}"
    supervisor = dict(state["supervisor"]) if state else {}
    supervisor["running"] = alive
    return {"supervisor": supervisor, "instances": instances, "queues": queues, "broker_error": broker_error}


def health(inst: dict, status: dict) -> str:
    if inst.get("consumer") and inst["alive"] and not inst["queues"] and not status["broker_error"]:
        return inst["ready"] + ", no consumer"
    return inst["ready"]


def print_status(status: dict) -> None:
    sup = status["supervisor"]
    if sup.get("running"):
        print(f"supervisor: running (pid {sup['pid']}, up {duration_text(time.time() - sup['started_at'])}, "
              f"state {STATE})")
    elif status["instances"]:
        print(f"supervisor: NOT running (last state {STATE}); instances it left: scripts/run stop stops them")
    else:
        print("supervisor: not running (scripts/run starts Aira)")
        return
    rows = [("INSTANCE", "PID", "PORT", "UPTIME", "RESTARTS", "STATE", "HEALTH", "CONSUMES")]
    for i in status["instances"]:
        state = "dead" if i["state"] in ("running", "starting", "stopping") and not i["alive"] else i["state"]
        last = f" ({i['last_exit']})" if i.get("last_exit") and i["state"] in ("backoff", "failed") else ""
        rows.append((i["instance"], str(i["pid"] or "-") if i["alive"] else "-", str(i["port"]),
                     duration_text(i["uptime_seconds"]) if i["uptime_seconds"] is not None else "-",
                     str(i["restarts"]), state + last, health(i, status), ", ".join(i["queues"]) or "-"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    if status["queues"]:
        print()
        qrows = [("QUEUE", "DEPTH", "READY", "UNACKED", "CONSUMERS", "DEAD LETTERS", "CONSUMED BY")]
        for q in status["queues"]:
            qrows.append((q["queue"], str(q["depth"]), str(q["ready"]), str(q["unacked"]), str(q["consumers"]),
                          "-" if q["dead_letters"] is None else str(q["dead_letters"]), ", ".join(q["consumed_by"])))
        widths = [max(len(r[c]) for r in qrows) for c in range(len(qrows[0]))]
        for r in qrows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    if status["broker_error"]:
        print(f"\nqueues unknown: {status['broker_error']}")


def healthy(status: dict) -> bool:
    return status["supervisor"].get("running", False) and all(up(i) for i in status["instances"])


def stop_without_supervisor(state: dict) -> int:
    """The supervisor is gone: stop, from its last state, every instance that is still the process
    it started (pid and start time), gracefully, and report each."""
    live = []
    for inst in state["instances"]:
        if same_process(inst.get("pid"), inst.get("pid_start")):
            live.append(inst)
        else:
            recorded = inst["state"]
            why = "it had exited" if recorded in ("running", "starting", "stopping") else recorded
            print(f"{inst['instance']}: was not running ({why}"
                  f"{', last ' + inst['last_exit'] if inst.get('last_exit') else ''})")
    for inst in live:
        os.kill(inst["pid"], signal.SIGTERM)
    started = time.monotonic()
    failed = False
    for inst in live:
        limit = shutdown_timeout(service_named(inst["service"])) + STOP_MARGIN
        while same_process(inst["pid"], inst["pid_start"]) and time.monotonic() - started < limit:
            time.sleep(0.1)
        if same_process(inst["pid"], inst["pid_start"]):
            try:
                os.kill(inst["pid"], signal.SIGKILL)
                print(f"{inst['instance']} (pid {inst['pid']}, port {inst['port']}): still running after {limit:g}s, killed")
            except ProcessLookupError:
                pass
        else:
            print(f"{inst['instance']} (pid {inst['pid']}, port {inst['port']}): stopped after {time.monotonic() - started:.1f}s")
    for inst in live:
        for _ in range(50):
            if not same_process(inst["pid"], inst["pid_start"]):
                break
            time.sleep(0.1)
        else:
            print(f"{inst['instance']} (pid {inst['pid']}): did not exit")
            failed = True
    return 1 if failed else 0


def command_stop() -> int:
    state = load_state()
    if state is None or (not supervisor_alive(state) and not state["instances"]):
        print("nothing to stop: no instance was started by scripts/run")
        return 0
    if supervisor_alive(state):
        try:
            answer = send({"command": "stop"})
            if not answer.get("ok"):
                print(f"error: {answer.get('error')}", file=sys.stderr)
                return 1
            sup = state["supervisor"]
            for _ in range(100):  # the supervisor exits once everything stopped
                if not same_process(sup["pid"], sup["pid_start"]):
                    break
                time.sleep(0.1)
            return 0
        except (OSError, ConnectionError, json.JSONDecodeError) as e:
            sup = state["supervisor"]
            print(f"the supervisor (pid {sup['pid']}) does not answer ({e}); stopping it and its instances directly")
            if same_process(sup["pid"], sup["pid_start"]):
                os.kill(sup["pid"], signal.SIGKILL)
    print(f"the supervisor is not running; stopping the instances recorded in {STATE}")
    code = stop_without_supervisor(state)
    state["instances"] = []
    with open(STATE, "w") as f:
        json.dump(state, f, indent=1)
    return code


def parse_scale(items: list[str]) -> dict[str, int]:
    scale = {}
    for item in items:
        for part in item.split(","):
            name, _, count = part.partition("=")
            if not count.isdigit():
                raise UserError(f"--scale {part!r}: expected service=N, e.g. thumbnail-worker=3")
            scale[service_named(name).name] = int(count)
    return scale


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up")
    up.add_argument("--bin", required=True)
    up.add_argument("--only", default="")
    up.add_argument("--scale", action="append", default=[])
    wait = sub.add_parser("wait")
    wait.add_argument("--timeout", type=float, default=120)
    wait.add_argument("--pid", type=int, help="the supervisor just started (the state file may still be an older one's)")
    status = sub.add_parser("status")
    status.add_argument("--json", action="store_true")
    scale = sub.add_parser("scale")
    scale.add_argument("service")
    scale.add_argument("count", type=int)
    restart = sub.add_parser("restart")
    restart.add_argument("service")
    sub.add_parser("stop")
    up.add_argument("--check", action="store_true", help="validate --only and --scale, start nothing")
    args = parser.parse_args()
    if args.command != "up":  # a command line piped into `head`: stop quietly, as other tools do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.makedirs(RUN_DIR, exist_ok=True)
    os.makedirs(LOG_DIR, exist_ok=True)
    try:
        if args.command == "up":
            state = load_state()
            if supervisor_alive(state):
                raise UserError(f"Aira already runs here (supervisor pid {state['supervisor']['pid']}): "
                                "scripts/run status | scale | restart | stop")
            if state and any(same_process(i.get("pid"), i.get("pid_start")) for i in state["instances"]):
                raise UserError("instances of an earlier run still run without their supervisor: scripts/run stop first")
            only = {service_named(n).name for n in args.only.split(",") if n} if args.only else None
            scale_counts = parse_scale(args.scale)
            services = []
            for s in SERVICES:
                if s.name == "mock-llm":
                    wanted = not ENV.get("AIRA_GPT_UPSTREAM_URL") and (only is None or "gpt-proxy" in only)
                elif s.name == "smtp-dev":
                    wanted = not ENV.get("AIRA_SMTP_HOST") and (only is None or "email-worker" in only)
                elif s.name == "prometheus":
                    wanted = ENV.get("AIRA_RUN_OBSERVE") == "1"
                else:
                    wanted = only is None or s.name in only
                if wanted:
                    services.append(s)
            if args.check:
                return 0
            supervisor = Supervisor(os.path.abspath(args.bin), services)
            return asyncio.run(supervisor.main(scale_counts))
        if args.command == "wait":
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                if args.pid and pid_start_time(args.pid) is None:
                    print(f"the supervisor exited (see {LOG_DIR}/supervisor.out and supervisor.log)", file=sys.stderr)
                    return 1
                state = load_state()
                if state and (not args.pid or state["supervisor"]["pid"] == args.pid):
                    status = gather_status(state)
                    if status["instances"] and healthy(status):
                        return 0
                    if any(i["state"] == "failed" for i in status["instances"]):
                        print_status(status)
                        return 1
                time.sleep(0.3)
            print_status(gather_status())
            return 1
        if args.command == "status":
            status = gather_status()
            if args.json:
                json.dump(status, sys.stdout, indent=1)
                print()
            else:
                print_status(status)
            if not status["supervisor"].get("running"):
                return 3
            return 0 if healthy(status) else 1
        if args.command in ("scale", "restart"):
            state = load_state()
            if not supervisor_alive(state):
                raise UserError("Aira is not running (scripts/run --detach starts it)")
            answer = send({"command": args.command, "service": args.service, "count": getattr(args, "count", None)})
            if not answer.get("ok"):
                raise UserError(answer.get("error"))
            return 0
        if args.command == "stop":
            return command_stop()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
