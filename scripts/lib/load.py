"""The load scenarios of `scripts/load` (docs/load/README.md): Locust, as a library, drives the
gateway of a stack `scripts/run` started; this module records every answer, samples every Aira
process (CPU, RSS) and a few service metrics once a second, and writes the report: markdown with
matplotlib charts, plus Locust's own HTML report.

    python load.py SCENARIO --host URL --out DIR [--short]

Scenarios: login-storm, data-growth, soak, spike. Knobs are environment variables (LOAD_*),
listed per scenario below and in docs/load/README.md. Every loop here is bounded in count and time.
Exit status: 0 when the scenario's hard targets held (no 500, every request answered), 1 when not.
"""
# Locust patches the standard library for gevent; it must be imported first.
import locust  # noqa: F401  (gevent's monkey patching)

import argparse
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import gevent
import gevent.event
import gevent.socket
from locust import FastHttpUser, User, constant, constant_pacing, between, events, task
from locust.env import Environment

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("AIRA_DATA", os.path.join(ROOT, ".data"))
STATE = os.path.join(os.environ.get("AIRA_RUN_DIR", os.path.join(DATA, "run")), "supervisor.json")
PASSWORD = "load-password-0001"
GATEWAY_PORT = 8080  # set from --host


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def fake_address(rng: random.Random) -> str:
    """Each simulated person comes from their own address (the gateway trusts X-Forwarded-For
    in these runs), so per-address limits apply as they would to real people."""
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


# --- what happened ---------------------------------------------------------------------------------

@dataclass
class Answer:
    t: float          # when the request was sent (wall clock)
    name: str         # the request's group (`login`, `qna`, ...)
    status: int       # 0: no answer (connection error, reset, timeout)
    ms: float         # response time
    error: str = ""


class Recorder:
    """Every request's answer, from Locust's request event."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.retry_after_missing = Counter()  # shed answers (429/503) without Retry-After, by name

    def on_request(self, request_type, name, response_time, response_length, response=None,
                   context=None, exception=None, start_time=None, **_):
        status = getattr(response, "status_code", 0) or 0
        error = ""
        if exception is not None and status == 0:
            error = type(exception).__name__ + ": " + str(exception)[:120]
        if status in (429, 503) and response is not None and not response.headers.get("Retry-After"):
            self.retry_after_missing[name] += 1
        self.answers.append(Answer(start_time or time.time() - response_time / 1000, name, status,
                                   float(response_time or 0), error))


class Sampler:
    """Once a second: CPU and RSS of every Aira process (from scripts/run's state file) and the
    named metrics of every instance's /metrics."""

    METRICS = ("aira_bcrypt_seconds_total", "aira_bcrypt_waiting", "aira_postgres_pool_connections",
               "aira_postgres_pool_waiting", "aira_gateway_rpc_in_flight", "aira_gateway_rpc_shed_total")

    def __init__(self) -> None:
        self.rows: list[dict] = []  # {t, proc: {name: (cpu_seconds, rss_bytes)}, metrics: {name: {labels: value}}}
        self.tick = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")
        self._stop = False
        self._greenlet = None

    def instances(self) -> list[dict]:
        try:
            with open(STATE) as f:
                return [i for i in json.load(f)["instances"] if i.get("pid")]
        except (OSError, ValueError, KeyError):
            return []

    def proc(self, pid: int) -> tuple[float, int] | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / self.tick, int(fields[21]) * self.page
        except (OSError, IndexError, ValueError):
            return None

    @staticmethod
    def scrape(port: int, names: tuple[str, ...]) -> dict:
        out: dict = defaultdict(dict)
        for line in metrics_text(port, timeout=1).splitlines():
            if not line or line[0] == "#":
                continue
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if m and m.group(1) in names:
                try:
                    out[m.group(1)][m.group(2) or ""] = float(m.group(3))
                except ValueError:
                    pass
        return out

    def sample(self) -> None:
        row = {"t": time.time(), "proc": {}, "metrics": {}}
        for i in self.instances():
            p = self.proc(i["pid"])
            if p is not None and not i.get("helper"):
                row["proc"][i["instance"]] = p
            if not i.get("helper") and i["state"] == "running":
                for name, series in self.scrape(i["port"], self.METRICS).items():
                    for labels, value in series.items():
                        row["metrics"][(i["instance"], name, labels)] = value
        self.rows.append(row)

    def start(self) -> None:
        def loop():
            while not self._stop:
                started = time.time()
                self.sample()
                gevent.sleep(max(0.0, 1.0 - (time.time() - started)))
        self._greenlet = gevent.spawn(loop)

    def stop(self) -> None:
        self._stop = True
        if self._greenlet is not None:
            self._greenlet.join(timeout=5)

    # Derived series.
    def cpu_series(self) -> dict[str, tuple[list[float], list[float]]]:
        """Per process: (times, CPU in cores) between consecutive samples."""
        out: dict[str, tuple[list[float], list[float]]] = {}
        for a, b in zip(self.rows, self.rows[1:]):
            dt = b["t"] - a["t"]
            for name, (cpu_b, _) in b["proc"].items():
                if name in a["proc"] and dt > 0:
                    xs, ys = out.setdefault(name, ([], []))
                    xs.append(b["t"])
                    ys.append(max(0.0, (cpu_b - a["proc"][name][0]) / dt))
        return out

    def rss_series(self) -> dict[str, tuple[list[float], list[float]]]:
        out: dict[str, tuple[list[float], list[float]]] = {}
        for row in self.rows:
            for name, (_, rss) in row["proc"].items():
                xs, ys = out.setdefault(name, ([], []))
                xs.append(row["t"])
                ys.append(rss / 2**20)
        return out

    def metric_series(self, metric: str, label_filter: str = "", rate: bool = False) -> tuple[list[float], list[float]]:
        """The metric summed over every instance (and matching labels); `rate`: per second."""
        xs, ys = [], []
        for row in self.rows:
            total = sum(v for (inst, name, labels), v in row["metrics"].items()
                        if name == metric and label_filter in labels)
            xs.append(row["t"])
            ys.append(total)
        if rate:
            rx, ry = [], []
            for i in range(1, len(xs)):
                dt = xs[i] - xs[i - 1]
                if dt > 0:
                    rx.append(xs[i])
                    ry.append(max(0.0, (ys[i] - ys[i - 1]) / dt))
            return rx, ry
        return xs, ys


# --- helpers for reports ---------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def fmt_ms(v: float) -> str:
    if v != v:
        return "—"
    return f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"


def machine() -> str:
    cores = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 2**20
    except OSError:
        mem = 0
    distro = ""
    try:
        with open("/etc/os-release") as f:
            distro = dict(l.rstrip().split("=", 1) for l in f if "=" in l).get("PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    swift = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.splitlines()
    return f"{cores} cores, {mem:.0f} GiB, {distro}, {swift[0] if swift else 'Swift ?'}, Locust {locust.__version__}"


def by_window(answers: list[Answer], t0: float, width: float) -> dict[int, list[Answer]]:
    out: dict[int, list[Answer]] = defaultdict(list)
    for a in answers:
        out[int((a.t - t0) // width)].append(a)
    return out


def status_table(answers: list[Answer]) -> str:
    counts = Counter((a.name, a.status) for a in answers)
    names = sorted({a.name for a in answers})
    statuses = sorted({a.status for a in answers})
    head = "| request | " + " | ".join("no answer" if s == 0 else str(s) for s in statuses) + " | total |"
    rows = [head, "|---" * (len(statuses) + 2) + "|"]
    for n in names:
        total = sum(counts[(n, s)] for s in statuses)
        rows.append(f"| {n} | " + " | ".join(f"{counts[(n, s)]:,}" for s in statuses) + f" | {total:,} |")
    return "\n".join(rows)


def latency_table(answers: list[Answer]) -> str:
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for a in answers:
        kind = "2xx" if 200 <= a.status < 300 else ("shed (429/503)" if a.status in (429, 503) else
                                                   ("no answer" if a.status == 0 else str(a.status)))
        groups[(a.name, kind)].append(a.ms)
    rows = ["| request | answer | count | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|---|"]
    for (n, k), v in sorted(groups.items()):
        rows.append(f"| {n} | {k} | {len(v):,} | {fmt_ms(pct(v, 50))} | {fmt_ms(pct(v, 95))} | "
                    f"{fmt_ms(pct(v, 99))} | {fmt_ms(max(v))} |")
    return "\n".join(rows)


class Report:
    def __init__(self, scenario: str, out: str, command: str, short: bool) -> None:
        self.scenario = scenario
        self.out = out
        self.command = command
        self.short = short
        self.sections: list[str] = []
        self.verdicts: list[tuple[str, bool, str]] = []  # (target, met, measured)
        self.hard_failures: list[str] = []
        self.html_note = f"`.data/load/html/{scenario}.html` on the machine that ran it (not in git: about 1 MB each)"
        os.makedirs(out, exist_ok=True)

    def chart(self, name: str, draw, title: str, ylabel: str, height: float = 3.2) -> str:
        fig, ax = plt.subplots(figsize=(9, height), dpi=90)
        draw(ax)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("seconds since start")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right", ncol=2)
        fig.tight_layout()
        file = f"{self.scenario}-{name}.png"
        fig.savefig(os.path.join(self.out, file))
        plt.close(fig)
        return f"![{title}]({file})"

    def target(self, what: str, met: bool, measured: str, hard: bool = False) -> None:
        self.verdicts.append((what, met, measured))
        if hard and not met:
            self.hard_failures.append(f"{what}: {measured}")

    def write(self, title: str, intro: str, started: float, finished: float) -> None:
        lines = [f"# Load: {title}", "", intro, "",
                 f"- Command: `{self.command}`",
                 f"- When: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))}–"
                 f"{time.strftime('%H:%M UTC', time.gmtime(finished))} ({finished - started:.0f} s)",
                 f"- Machine: {machine()}; the driver, the services and RabbitMQ, Redis and PostgreSQL "
                 f"share it (127.0.0.1)",
                 f"- Locust's own report: {self.html_note}", "",
                 "## Targets", "", "| target | met | measured |", "|---|---|---|"]
        for what, met, measured in self.verdicts:
            lines.append(f"| {what} | {'yes' if met else '**no**'} | {measured} |")
        lines.append("")
        lines += self.sections
        with open(os.path.join(self.out, f"{self.scenario}.md"), "w") as f:
            f.write("\n".join(lines).rstrip() + "\n")


def locust_env(user_classes, host: str, recorder: Recorder) -> Environment:
    env = Environment(user_classes=user_classes, host=host, events=events)
    env.events.request.add_listener(recorder.on_request)
    return env


def run_users(env: Environment, users: int, spawn_rate: float, until, limit_s: float) -> None:
    """Starts `users` at `spawn_rate`, then waits until `until()` or `limit_s` seconds."""
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=spawn_rate)
    deadline = time.time() + limit_s
    while time.time() < deadline and not until(runner):
        gevent.sleep(0.5)
    runner.quit()
    gevent.sleep(0.5)


HTML_DIR = os.path.join(DATA, "load", "html")


def html_report(env: Environment, report: Report) -> None:
    """Locust's own HTML report, in .data/load/html/ (about 1 MB each, Locust's web UI bundled
    in: kept out of git; the markdown report names the file)."""
    try:
        from locust.html import get_html_report
        html = get_html_report(env, show_download_link=False)
    except Exception as e:  # an older or newer Locust without it: say so, keep the rest
        html = f"<p>Locust's HTML report failed: {e}</p>"
    os.makedirs(HTML_DIR, exist_ok=True)
    with open(os.path.join(HTML_DIR, f"{report.scenario}.html"), "w") as f:
        f.write(html)


# --- what the gateway itself measured ----------------------------------------------------------------------

def metrics_text(port: int, timeout: float) -> str:
    """An instance's /metrics, or "" when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return ""


def gateway_histogram(port: int) -> dict[tuple[str, str, float], float]:
    """The gateway's `http_server_request_duration` buckets now: (route, status, le) → count."""
    out: dict[tuple[str, str, float], float] = {}
    for line in metrics_text(port, timeout=5).splitlines():
        if not line.startswith("http_server_request_duration_bucket{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[line.index("{"):line.index("}")]))
        try:
            le = float(labels["le"].replace("+Inf", "inf"))
            out[(labels.get("http_route", "?"), labels.get("http_response_status_code", "?"), le)] = float(line.rsplit(" ", 1)[1])
        except (KeyError, ValueError):
            pass
    return out


def shed_within(before: dict, after: dict, routes: tuple[str, ...], limit_s: float = 0.1) -> tuple[float, float]:
    """(shed answers, of them within `limit_s`) on `routes`, from the gateway's histogram."""
    total = within = 0.0
    for (route, status, le), v in after.items():
        if route in routes and status in ("429", "503"):
            d = v - before.get((route, status, le), 0.0)
            if le == float("inf"):
                total += d
            elif abs(le - limit_s) < 1e-9:
                within += d
    return total, within


def server_side_table(before: dict, after: dict, routes: tuple[str, ...]) -> str:
    """Per route and status: answers, and the time the gateway took (from its histogram: the
    upper bound of the bucket holding the quantile) — the driver's own times include its queueing."""
    per: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for (route, status, le), v in after.items():
        if route in routes:
            per[(route, status)].append((le, v - before.get((route, status, le), 0.0)))
    rows = ["| route | status | answers | within 100 ms | p50 ≤ | p99 ≤ |", "|---|---|---|---|---|---|"]
    for (route, status), buckets in sorted(per.items()):
        buckets.sort()
        total = buckets[-1][1]
        if total <= 0:
            continue

        def q(p):
            for le, c in buckets:
                if c >= p * total:
                    return "∞" if le == float("inf") else (f"{le * 1000:g} ms" if le < 1 else f"{le:g} s")
            return "?"
        within = next((c for le, c in buckets if abs(le - 0.1) < 1e-9), float("nan"))
        rows.append(f"| {route} | {status} | {total:,.0f} | {within / total:.1%} | {q(0.5)} | {q(0.99)} |")
    return "\n".join(rows)


# --- accounts ----------------------------------------------------------------------------------------

def psql(sql: str) -> str:
    r = subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", os.environ["AIRA_DATABASE_URL"], "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"psql failed: {r.stderr.strip()}")
    return r.stdout


def seed_accounts(prefix: str, count: int) -> list[str]:
    """`count` verified USER accounts `<prefix>-N@load.invalid`, all with PASSWORD (one bcrypt hash
    made by aira-bench-auth at the configured cost: verifying it costs what any login costs)."""
    cost = os.environ.get("AIRA_BCRYPT_COST", "10")
    bench = os.path.join(os.environ["LOAD_BIN_DIR"], "aira-bench-auth")
    hashed = subprocess.run([bench, "hash", cost, PASSWORD], check=True, capture_output=True, text=True).stdout.strip()
    psql(f"""
        INSERT INTO users (id, email, password_hash, role, email_verified_at)
        SELECT gen_random_uuid(), '{prefix}-' || n || '@load.invalid', '{hashed}', 'USER', now()
        FROM generate_series(1, {count}) n
        ON CONFLICT ((lower(email))) DO UPDATE SET password_hash = EXCLUDED.password_hash, suspended_at = NULL""")
    return [f"{prefix}-{n}@load.invalid" for n in range(1, count + 1)]


def login_tokens(host: str, emails: list[str], rng: random.Random) -> list[str]:
    """Access tokens for `emails` (see login_sessions)."""
    return [access for access, _ in login_sessions(host, emails, rng)]


def login_sessions(host: str, emails: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """(access token, refresh token) for `emails`, logged in one at a time before the measured
    part (bounded: a login retried at most 20 times)."""
    tokens = []
    for email in emails:
        for _ in range(20):
            req = urllib.request.Request(f"{host}/api/auth/login", method="POST",
                                         data=json.dumps({"email": email, "password": PASSWORD}).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "X-Forwarded-For": fake_address(rng)})
            try:
                with urllib.request.urlopen(req, timeout=15) as r:
                    pair = json.load(r)
                    tokens.append((pair["accessToken"], pair["refreshToken"]))
                    break
            except urllib.error.HTTPError as e:
                if e.code not in (429, 503, 504):
                    raise
                time.sleep(float(e.headers.get("Retry-After") or 1))
        else:
            raise SystemExit(f"could not log {email} in for the scenario's set-up")
    return tokens


# --- 1. login storm ------------------------------------------------------------------------------------

def login_storm(host: str, report: Report) -> None:
    """LOAD_ACCOUNTS (10,000) distinct accounts each log in once, spawned as fast as Locust can
    (LOAD_SPAWN_RATE, 1,000/s). A shed answer (429/503) is retried as a careful client does: after
    at least its Retry-After, with exponential backoff and full jitter beyond it (up to 60 s), for
    at most LOAD_GIVE_UP seconds (900) per person. Whole run bounded by LOAD_LIMIT (1,200 s)."""
    count = env_int("LOAD_ACCOUNTS", 1000 if report.short else 10_000)
    spawn = env_float("LOAD_SPAWN_RATE", 1000)
    give_up = env_float("LOAD_GIVE_UP", 900)
    limit = env_float("LOAD_LIMIT", 1200)
    emails = seed_accounts("storm", count)
    outcome: dict[str, tuple[bool, int, float]] = {}  # email → (logged in, attempts, seconds to success)
    queue = list(emails)
    random.Random(7).shuffle(queue)

    class Person(FastHttpUser):
        wait_time = constant(0)
        connection_timeout = 30.0
        network_timeout = 30.0

        def on_start(self):
            self.rng = random.Random()
            self.address = fake_address(self.rng)

        @task
        def login(self):
            if not queue:
                gevent.sleep(1)
                return
            email = queue.pop()
            began = time.time()
            attempts = 0
            while time.time() - began < give_up:
                attempts += 1
                with self.client.post("/api/auth/login", json={"email": email, "password": PASSWORD},
                                      headers={"X-Forwarded-For": self.address}, name="login",
                                      catch_response=True) as r:
                    if r.status_code == 200:
                        r.success()
                        outcome[email] = (True, attempts, time.time() - began)
                        break
                    if r.status_code in (429, 503):
                        r.success()  # shed as designed; the retry decides the outcome
                        # A careful client: at least Retry-After, and exponential backoff with
                        # full jitter beyond it (1, 2, 4 … 60 s), as cloud SDKs retry.
                        backoff = self.rng.uniform(0, min(60.0, 2.0 ** attempts))
                        gevent.sleep(max(float(r.headers.get("Retry-After") or 1), backoff))
                        continue
                    r.failure(f"status {r.status_code}")
                    outcome[email] = (False, attempts, time.time() - began)
                    break
            else:
                outcome[email] = (False, attempts, time.time() - began)
            self.stop()

    recorder = Recorder()
    env = locust_env([Person], host, recorder)
    sampler = Sampler()
    sampler.start()
    hist_before = gateway_histogram(GATEWAY_PORT)
    started = time.time()
    run_users(env, count, spawn, lambda runner: len(outcome) >= count, limit)
    finished = time.time()
    hist_after = gateway_histogram(GATEWAY_PORT)
    sampler.stop()
    html_report(env, report)

    answers = recorder.answers
    t0 = started
    ok = sum(1 for v in outcome.values() if v[0])
    first_try = sum(1 for v in outcome.values() if v[0] and v[1] == 1)
    shed = [a for a in answers if a.status in (429, 503)]
    errors5 = [a for a in answers if a.status >= 500 and a.status != 503]
    lost = [a for a in answers if a.status == 0]
    to_success = [v[2] for v in outcome.values() if v[0]]
    # Throughput of successful logins.
    logins_done = sorted(a.t + a.ms / 1000 for a in answers if a.status == 200)
    span = (logins_done[-1] - logins_done[0]) if len(logins_done) > 1 else 0
    report.target("every account logged in (retrying shed answers)", ok == count,
                  f"{ok:,} of {count:,} ({ok / count:.1%}); {first_try:,} on the first try")
    report.target("no 500 and no other 5xx than 503", not errors5,
                  f"{len(errors5):,} ({Counter(a.status for a in errors5) or 'none'})", hard=True)
    report.target("every request answered (no reset, no client timeout)", not lost, f"{len(lost):,} unanswered", hard=True)
    _shed_target(report, shed, hist_before, hist_after, ("/api/auth/login",))
    missing = sum(recorder.retry_after_missing.values())
    report.target("every shed answer carries Retry-After", missing == 0, f"{missing:,} without", hard=True)
    ok_ms = [a.ms for a in answers if a.status == 200]
    timed_out = sum(1 for a in answers if a.status == 504)
    report.target("no login waits out its deadline (10 s) instead of being shed: 0 × 504", timed_out == 0,
                  f"{timed_out:,} × 504; slowest 200 as the driver saw it: {fmt_ms(max(ok_ms) if ok_ms else float('nan'))}")

    bx, by = sampler.metric_series("aira_bcrypt_seconds_total", 'op="verify"', rate=True)
    px, py = sampler.metric_series("aira_postgres_pool_connections", 'state="in_use"')
    _, pmax = sampler.metric_series("aira_postgres_pool_connections", 'state="max"')
    wx, wy = sampler.metric_series("aira_postgres_pool_waiting")
    cpu = sampler.cpu_series()

    def rt(ax):
        for label, pred, color in (("200", lambda a: a.status == 200, "tab:green"),
                                   ("429/503 (shed)", lambda a: a.status in (429, 503), "tab:orange"),
                                   ("other", lambda a: a.status not in (200, 429, 503), "tab:red")):
            pts = [(a.t - t0, a.ms) for a in answers if pred(a)]
            if pts:
                ax.scatter(*zip(*pts), s=2, alpha=0.4, color=color, label=label)
        ax.set_yscale("log")

    def status_rate(ax):
        w = by_window(answers, t0, 1.0)
        xs = sorted(w)
        for label, pred, color in (("200", lambda a: a.status == 200, "tab:green"),
                                   ("shed", lambda a: a.status in (429, 503), "tab:orange"),
                                   ("other", lambda a: a.status not in (200, 429, 503), "tab:red")):
            ax.plot(xs, [sum(1 for a in w[x] if pred(a)) for x in xs], label=label, color=color)

    def resources(ax):
        ax.plot([x - t0 for x in bx], by, label="bcrypt (cores busy verifying, CPU time)", color="tab:purple")
        for name, (xs, ys) in cpu.items():
            if name.startswith(("aira-auth", "aira-gateway")):
                ax.plot([x - t0 for x in xs], ys, label=f"{name} CPU", linewidth=0.8)
        ax.axhline(os.cpu_count() or 2, color="grey", linestyle=":", label="machine's cores")

    def pool(ax):
        ax.plot([x - t0 for x in px], py, label="connections in use (all pools)")
        ax.plot([x - t0 for x in px], pmax, label="pool size (all pools)", linestyle=":")
        ax.plot([x - t0 for x in wx], wy, label="callers waiting")

    charts = [report.chart("latency", rt, "Response time of each login attempt", "ms (log)"),
              report.chart("status", status_rate, "Answers per second", "answers/s"),
              report.chart("cpu", resources, "bcrypt and process CPU", "cores"),
              report.chart("pool", pool, "PostgreSQL pools (every service)", "connections")]
    bcpu = [y for y in by]
    report.sections += [
        "## Result", "",
        f"- {count:,} accounts, spawned at up to {spawn:,.0f}/s; {len(answers):,} login requests in "
        f"{finished - started:.0f} s.",
        f"- Successful logins: {len(logins_done):,}, {len(logins_done) / span if span else 0:.1f}/s from the first to "
        f"the last; time from a person's first try to being logged in: p50 {to_success and pct(to_success, 50):.1f} s, "
        f"p95 {to_success and pct(to_success, 95):.1f} s, max {max(to_success) if to_success else 0:.1f} s.",
        f"- bcrypt kept {pct(bcpu, 50):.2f} cores busy at the median second of "
        f"{os.cpu_count()}; the PostgreSQL pools had at most {max(py) if py else 0:.0f} connections in use "
        f"and {max(wy) if wy else 0:.0f} callers waiting.",
        "", "### Answers", "", status_table(answers), "", "### Response times (as the driver saw them)", "",
        latency_table(answers), "", "### As the gateway measured them", "",
        server_side_table(hist_before, hist_after, ("/api/auth/login",)), "",
        *[c + "\n" for c in charts]]
    report.write("login storm", login_storm.__doc__.strip().replace("\n    ", "\n"), started, finished)


# --- 2. data growth -------------------------------------------------------------------------------------

SEARCH_WORDS = ["swift", "server", "rabbitmq", "redis", "postgres", "search", "video", "music", "travel",
                "coffee", "서울", "여행", "음악", "커피", "東京", "旅行", "música", "café", "reise", "voyage"]


def data_growth(host: str, report: Report) -> None:
    """LOAD_USERS (1,000) people browse the posts, each reading a page for a random 1–5 s
    (LOAD_THINK_MIN/MAX) before the next, for LOAD_DURATION seconds (120) after a ramp of
    LOAD_USERS/LOAD_SPAWN_RATE (100/s). Half the requests are post lists (first pages, page numbers,
    tags, most liked, authors, deep pages), half searches — the request mix of
    `scripts/bench-search` (scripts/bench/search_paths.py: keywords in five languages with a long
    tail, two-word searches, typos, tag filters). The posts are those `scripts/seed-posts` wrote
    (LOAD_POSTS, a million)."""
    users = env_int("LOAD_USERS", 200 if report.short else 1000)
    duration = env_float("LOAD_DURATION", 30 if report.short else 120)
    spawn = env_float("LOAD_SPAWN_RATE", 100)
    think = (env_float("LOAD_THINK_MIN", 1), env_float("LOAD_THINK_MAX", 5))
    posts = int(psql("SELECT count(*) FROM posts").strip() or 0)
    mix = os.path.join(ROOT, "scripts/bench/search_paths.py")
    paths = {kind: subprocess.run([sys.executable, mix, kind, "20000"], check=True, capture_output=True,
                                  text=True).stdout.split()
             for kind in ("list", "search")}

    class Reader(FastHttpUser):
        wait_time = between(*think)

        def on_start(self):
            self.rng = random.Random()
            self.headers = {"X-Forwarded-For": fake_address(self.rng)}

        @task(1)
        def browse(self):
            self.client.get(self.rng.choice(paths["list"]), headers=self.headers, name="list")

        @task(1)
        def search(self):
            self.client.get(self.rng.choice(paths["search"]), headers=self.headers, name="search")

    recorder = Recorder()
    env = locust_env([Reader], host, recorder)
    sampler = Sampler()
    sampler.start()
    started = time.time()
    ramp = users / spawn
    run_users(env, users, spawn, lambda runner: False, ramp + duration)
    finished = time.time()
    sampler.stop()
    html_report(env, report)
    measured = [a for a in recorder.answers if a.t >= started + ramp]
    _common_targets(report, recorder.answers)
    lists = [a.ms for a in measured if a.name == "list" and a.status == 200]
    search = [a.ms for a in measured if a.name == "search" and a.status == 200]
    report.target("lists: p95 < 300 ms at full load", pct(lists, 95) < 300, f"p95 {fmt_ms(pct(lists, 95))}")
    report.target("search: p95 < 300 ms at full load", pct(search, 95) < 300, f"p95 {fmt_ms(pct(search, 95))}")
    rate = len(measured) / max(1.0, finished - started - ramp)
    charts = _timeline_charts(report, recorder.answers, sampler, started)
    report.sections += [
        "## Result", "",
        f"- {users:,} people over {posts:,} posts; {len(recorder.answers):,} requests, {rate:.0f}/s once all had "
        f"arrived ({ramp:.0f} s ramp); {len(set(paths['search'])):,} distinct searches in the mix of "
        f"{len(paths['search']):,}.",
        "", "### Answers", "", status_table(recorder.answers), "",
        "### Response times (after the ramp)", "", latency_table(measured), "", *[c + "\n" for c in charts]]
    report.write("data growth", data_growth.__doc__.strip().replace("\n    ", "\n"), started, finished)


def _shed_target(report: Report, shed: list[Answer], before: dict, after: dict, routes: tuple[str, ...]) -> None:
    """Shed answers within 100 ms, as the gateway measured them (its histogram). The driver's own
    times are shown next to it: a Python driver sharing 2 cores with the stack adds its queueing."""
    total, within = shed_within(before, after, routes)
    client = [a.ms for a in shed]
    report.target("shed answers (429/503) within 100 ms (the gateway's time)", total == 0 or within >= 0.99 * total,
                  f"{total:,.0f} shed, {within / total if total else 1:.1%} within 100 ms; as the driver saw them: "
                  f"p50 {fmt_ms(pct(client, 50))}, p99 {fmt_ms(pct(client, 99))}")


def _common_targets(report: Report, answers: list[Answer]) -> None:
    errors5 = [a for a in answers if a.status >= 500 and a.status != 503]
    lost = [a for a in answers if a.status == 0]
    report.target("no 500 and no other 5xx than 503", not errors5,
                  f"{len(errors5):,} ({dict(Counter(a.status for a in errors5)) or 'none'})", hard=True)
    report.target("every request answered (no reset, no client timeout)", not lost,
                  f"{len(lost):,} unanswered" + (f" (first: {lost[0].error})" if lost else ""), hard=True)


def _timeline_charts(report: Report, answers: list[Answer], sampler: Sampler, t0: float, window: float = 5.0) -> list[str]:
    w = by_window(answers, t0, window)
    xs = sorted(w)
    names = sorted({a.name for a in answers})

    def p95(ax):
        for n in names:
            pts = [(x * window, pct([a.ms for a in w[x] if a.name == n and 200 <= a.status < 300], 95)) for x in xs]
            pts = [p for p in pts if p[1] == p[1]]
            if pts:
                ax.plot(*zip(*pts), label=n, linewidth=1)
        ax.set_yscale("log")

    def rate(ax):
        ax.plot([x * window for x in xs], [sum(1 for a in w[x] if 200 <= a.status < 300) / window for x in xs],
                label="2xx", color="tab:green")
        ax.plot([x * window for x in xs], [sum(1 for a in w[x] if not 200 <= a.status < 300) / window for x in xs],
                label="other", color="tab:red")

    cpu = sampler.cpu_series()
    rss = sampler.rss_series()

    def cpu_chart(ax):
        for name, (cx, cy) in sorted(cpu.items()):
            ax.plot([x - t0 for x in cx], cy, label=name, linewidth=0.8)

    def rss_chart(ax):
        for name, (rx, ry) in sorted(rss.items()):
            ax.plot([x - t0 for x in rx], ry, label=name, linewidth=0.8)

    return [report.chart("p95", p95, f"p95 response time per {window:.0f} s, by request (2xx)", "ms (log)"),
            report.chart("rate", rate, "Answers per second", "answers/s"),
            report.chart("cpu", cpu_chart, "CPU of every Aira process", "cores"),
            report.chart("rss", rss_chart, "Resident memory of every Aira process", "MiB")]


# --- 3. soak ----------------------------------------------------------------------------------------------

def soak(host: str, report: Report) -> None:
    """LOAD_USERS (40) signed-in people at a steady pace (each one request every LOAD_PACE s, 1)
    for LOAD_DURATION seconds (1,800; `--short` 120), each refreshing its token pair every
    LOAD_REFRESH_AFTER seconds (600; access tokens live 15 minutes), as a client does: `GET /api/users/me`, GPT questions (most from
    a small set that is cached, some new), playlists (list, create, read), videos (list, read) and
    a small upload now and then. Targets: every process's RSS flat within 5 % after the warm-up
    (LOAD_WARMUP, a fifth of the run), p95 not drifting (the last fifth against the first after the
    warm-up), no errors."""
    users = env_int("LOAD_USERS", 40)
    duration = env_float("LOAD_DURATION", 120 if report.short else 1800)
    pace = env_float("LOAD_PACE", 1.0)
    warmup = env_float("LOAD_WARMUP", duration / 5)
    rng = random.Random(11)
    emails = seed_accounts("soak", users)
    sessions = login_sessions(host, emails, rng)
    refresh_after = env_float("LOAD_REFRESH_AFTER", 600)  # access tokens live 15 minutes
    questions = [f"What is the capital of country number {i}?" for i in range(20)]
    clip = os.path.join(DATA, "load", "clip.mp4")
    if not os.path.exists(clip):
        os.makedirs(os.path.dirname(clip), exist_ok=True)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                        "-t", "1", "-pix_fmt", "yuv420p", clip], check=True)
    with open(clip, "rb") as f:
        clip_bytes = f.read()
    pool = list(sessions)

    class Person(FastHttpUser):
        wait_time = constant_pacing(pace)

        def on_start(self):
            self.rng = random.Random()
            self.access, self.refresh_token = pool.pop() if pool else rng.choice(sessions)
            self.address = fake_address(self.rng)
            self.token_at = time.time()
            self.headers = {"Authorization": f"Bearer {self.access}", "X-Forwarded-For": self.address}
            self.my_playlists: list[str] = []

        def on_request_start(self):
            """As a client does: a new token pair before the access token expires."""
            if time.time() - self.token_at < refresh_after:
                return
            r = self.client.post("/api/auth/refresh", json={"refreshToken": self.refresh_token},
                                 headers={"X-Forwarded-For": self.address}, name="refresh")
            if r.status_code == 200:
                pair = r.json()
                self.access, self.refresh_token = pair["accessToken"], pair["refreshToken"]
                self.token_at = time.time()
                self.headers = {"Authorization": f"Bearer {self.access}", "X-Forwarded-For": self.address}

        @task(6)
        def me(self):
            self.on_request_start()
            self.client.get("/api/users/me", headers=self.headers, name="users/me")

        @task(3)
        def cached_question(self):
            self.on_request_start()
            self.client.post("/api/gpt/qna", json={"question": self.rng.choice(questions)}, headers=self.headers,
                             name="qna (cached set)")

        @task(1)
        def new_question(self):
            self.on_request_start()
            self.client.post("/api/gpt/qna", json={"question": f"Explain idea {self.rng.getrandbits(64):x}, please."},
                             headers=self.headers, name="qna (new)")

        @task(3)
        def playlists(self):
            self.on_request_start()
            self.client.get("/api/playlists?owner=me&limit=20", headers=self.headers, name="playlists (mine)")
            if self.my_playlists:
                self.client.get(f"/api/playlists/{self.rng.choice(self.my_playlists)}", headers=self.headers,
                                name="playlist")

        @task(1)
        def create_playlist(self):
            self.on_request_start()
            if len(self.my_playlists) >= 20:
                return
            r = self.client.post("/api/playlists", json={"title": f"soak {self.rng.getrandbits(32):x}"},
                                 headers=self.headers, name="playlist (create)")
            if r.status_code == 201:
                self.my_playlists.append(r.json()["id"])

        @task(3)
        def videos(self):
            self.on_request_start()
            self.client.get("/api/videos?owner=me&limit=20", headers=self.headers, name="videos (mine)")

        @task(1)
        def upload(self):
            self.on_request_start()
            if self.rng.random() < 0.2:  # about one upload per person every 100 requests
                self.client.post("/api/videos?title=soak", data=clip_bytes,
                                 headers=self.headers | {"Content-Type": "application/octet-stream"}, name="upload")

    recorder = Recorder()
    env = locust_env([Person], host, recorder)
    sampler = Sampler()
    sampler.start()
    started = time.time()
    run_users(env, users, 10, lambda runner: False, duration)
    finished = time.time()
    sampler.stop()
    html_report(env, report)

    _common_targets(report, recorder.answers)
    errors = [a for a in recorder.answers if not 200 <= a.status < 300]
    report.target("error rate (anything but 2xx) < 0.1 %", len(errors) <= 0.001 * len(recorder.answers),
                  f"{len(errors):,} of {len(recorder.answers):,} ({dict(Counter((a.name, a.status) for a in errors)) or 'none'})")
    t_warm = started + warmup
    fifth = (finished - t_warm) / 4
    # Drift per request kind (a mix's p95 moves with the share of its slowest kind); new
    # questions wait for the model (LOAD_MOCK_LATENCY), so their time is the upstream's.
    drift_rows, worst_drift, verdict = [], "", True
    for name in sorted({a.name for a in recorder.answers} - {"qna (new)"}):
        first = [a.ms for a in recorder.answers if a.name == name and t_warm <= a.t < t_warm + fifth and 200 <= a.status < 300]
        last = [a.ms for a in recorder.answers if a.name == name and a.t >= finished - fifth and 200 <= a.status < 300]
        if len(first) < 20 or len(last) < 20:
            continue
        p_first, p_last = pct(first, 95), pct(last, 95)
        ok = p_last <= max(p_first * 1.2, p_first + 5)
        verdict = verdict and ok
        drift_rows.append(f"| {name} | {fmt_ms(p_first)} | {fmt_ms(p_last)} | {'yes' if ok else '**no**'} |")
        if not ok or not worst_drift:
            worst_drift = f"{name}: {fmt_ms(p_first)} → {fmt_ms(p_last)}"
    report.target("p95 does not drift: each request kind's p95 in the last quarter within 20 % (or 5 ms) of the first "
                  "quarter after warm-up", verdict and bool(drift_rows),
                  f"{len(drift_rows)} kinds compared" + (f"; e.g. {worst_drift}" if worst_drift else ""))
    rss_rows = []
    worst = 0.0
    for name, (xs, ys) in sorted(sampler.rss_series().items()):
        a = [y for x, y in zip(xs, ys) if t_warm <= x < t_warm + fifth]
        b = [y for x, y in zip(xs, ys) if x >= finished - fifth]
        if not a or not b:
            continue
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        growth = (mb - ma) / ma
        worst = max(worst, growth)
        rss_rows.append(f"| {name} | {ma:,.1f} MiB | {mb:,.1f} MiB | {growth:+.1%} |")
    report.target("RSS of every process flat within 5 % after warm-up", worst <= 0.05, f"largest growth {worst:+.1%}")
    charts = _timeline_charts(report, recorder.answers, sampler, started, window=max(5.0, duration / 120))
    report.sections += [
        "## Result", "",
        f"- {users} people, one request each every {pace:g} s, {duration:.0f} s; {len(recorder.answers):,} requests.",
        "", "### p95 by request, first quarter after warm-up vs last quarter", "",
        "| request | first | last | within 20 % or 5 ms |", "|---|---|---|---|", *drift_rows, "",
        "### Resident memory, first quarter after warm-up vs last quarter", "",
        "| process | first | last | growth |", "|---|---|---|---|", *rss_rows, "",
        "### Answers", "", status_table(recorder.answers), "",
        "### Response times", "", latency_table(recorder.answers), "", *[c + "\n" for c in charts]]
    report.write("soak", soak.__doc__.strip().replace("\n    ", "\n"), started, finished)


# --- 4. spike ------------------------------------------------------------------------------------------------

def spike(host: str, report: Report) -> None:
    """LOAD_REQUESTS (10,000) requests released at one instant: as many people, each with an open
    connection (a `GET /health/live` first), wait at a barrier; then each sends one request — most
    `POST /api/gpt/qna` (LOAD_QNA_SHARE, 0.7; half of them with a token, half without), the rest
    `GET /api/search`. One Python process cannot send 10,000 requests within a second, so the
    people are split over LOAD_DRIVERS (2, one per core) Locust processes, released together at one instant of
    the wall clock. Targets: 0 × 500, every request answered (no reset), shed answers (429/503)
    within 100 ms."""
    count = env_int("LOAD_REQUESTS", 2000 if report.short else 10_000)
    drivers = max(1, env_int("LOAD_DRIVERS", 2))
    rng = random.Random(5)
    tokens = login_tokens(host, seed_accounts("spike", env_int("LOAD_ACCOUNTS", 100)), rng)
    work = os.path.join(DATA, "load", "spike-work")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "tokens.json"), "w") as f:
        json.dump(tokens, f)
    go = os.path.join(work, "go")
    if os.path.exists(go):
        os.remove(go)
    sampler = Sampler()
    sampler.start()
    started = time.time()
    children = []
    for i in range(drivers):
        n = count // drivers + (1 if i < count % drivers else 0)
        children.append(subprocess.Popen(
            [sys.executable, __file__, "spike-driver", "--host", host, "--out", report.out, "--part", str(i),
             "--count", str(n), "--work", work], stdout=subprocess.PIPE, text=True))
    limit = time.time() + env_float("LOAD_LIMIT", 300)
    connected = 0
    for c in children:  # each says how many connections it opened, once all are open
        line = c.stdout.readline().strip()
        connected += int(line) if line.isdigit() else 0
    released = time.time() + 1.0
    with open(go + ".tmp", "w") as f:
        f.write(repr(released))
    os.replace(go + ".tmp", go)
    gevent.sleep(max(0.0, released - time.time() - 0.3))
    hist_before = gateway_histogram(GATEWAY_PORT)
    recorder = Recorder()
    sent: list[float] = []
    for i, c in enumerate(children):
        try:
            c.wait(timeout=max(1.0, limit - time.time()))
        except subprocess.TimeoutExpired:
            c.kill()
        try:
            with open(os.path.join(work, f"part-{i}.json")) as f:
                part = json.load(f)
        except (OSError, ValueError):
            report.hard_failures.append(f"driver {i} wrote no answers")
            continue
        recorder.answers += [Answer(*a) for a in part["answers"]]
        sent += part["sent"]
        for name, n in part["retry_after_missing"].items():
            recorder.retry_after_missing[name] += n
    finished = time.time()
    hist_after = gateway_histogram(GATEWAY_PORT)
    sampler.stop()
    report.html_note = ", ".join(f"`.data/load/html/spike-driver-{i}.html`" for i in range(drivers)) + \
        " (one per driver process) on the machine that ran it (not in git: about 1 MB each)"

    answers = [a for a in recorder.answers if not a.name.startswith("connect")]
    send_window = (max(sent) - min(sent)) if sent else 0
    report.target(f"{count:,} requests sent within one second", len(sent) >= count and send_window <= 1.0,
                  f"{len(sent):,} sent in {send_window:.2f} s ({connected:,} connections open)")
    _common_targets(report, answers)
    shed = [a for a in answers if a.status in (429, 503)]
    _shed_target(report, shed, hist_before, hist_after, ("/api/gpt/qna", "/api/search"))
    missing = sum(recorder.retry_after_missing.values())
    report.target("every shed answer carries Retry-After", missing == 0, f"{missing:,} without", hard=True)
    shares = Counter(a.status for a in answers)
    share_rows = ["| status | count | share | p50 | p99 | max |", "|---|---|---|---|---|---|"]
    for s, n in sorted(shares.items()):
        v = [a.ms for a in answers if a.status == s]
        share_rows.append(f"| {'no answer' if s == 0 else s} | {n:,} | {n / len(answers):.1%} | {fmt_ms(pct(v, 50))} | "
                          f"{fmt_ms(pct(v, 99))} | {fmt_ms(max(v))} |")

    def each(ax):
        colors = {200: "tab:green", 401: "tab:blue", 429: "tab:orange", 503: "tab:brown"}
        for s in sorted(shares):
            pts = [(a.t - released, a.ms) for a in answers if a.status == s]
            ax.scatter(*zip(*pts), s=2, alpha=0.5, color=colors.get(s, "tab:red"), label=str(s or "no answer"))
        ax.set_yscale("log")
        ax.set_xlabel("seconds since the release (when the request was sent)")

    def hist(ax):
        for s in sorted(shares):
            v = sorted(a.ms for a in answers if a.status == s)
            ax.plot(v, [i / len(v) for i in range(1, len(v) + 1)], label=str(s or "no answer"))
        ax.set_xscale("log")

    c1 = report.chart("answers", each, "Each answer's time, by status", "ms (log)")
    c2 = report.chart("cdf", hist, "Share of answers within a time, by status", "share")
    report.sections += [
        "## Result", "",
        f"- {connected:,} connections opened (spawned at {env_float('LOAD_SPAWN_RATE', 500):,.0f}/s), then "
        f"released at once: {len(sent):,} requests sent within {send_window:.2f} s; the last answer "
        f"{(max(a.t + a.ms / 1000 for a in answers) - released) if answers else 0:.1f} s after the release.",
        "", "### Status codes", "", "\n".join(share_rows), "",
        "### By request (times as the driver saw them)", "", status_table(answers), "", latency_table(answers), "",
        "### As the gateway measured them", "",
        server_side_table(hist_before, hist_after, ("/api/gpt/qna", "/api/search")), "", c1, "", c2, ""]
    report.write("spike", spike.__doc__.strip().replace("\n    ", "\n"), started, finished)


def spike_driver(host: str, out: str, part: int, count: int, work: str) -> None:
    """One of the spike's driver processes: opens `count` connections, prints how many, waits for
    the release instant in WORK/go, sends one request on each, writes WORK/part-N.json."""
    qna_share = env_float("LOAD_QNA_SHARE", 0.7)
    with open(os.path.join(work, "tokens.json")) as f:
        tokens = json.load(f)
    barrier = gevent.event.Event()
    ready = [0]
    failed = [0]
    done = [0]
    sent: list[float] = []
    questions = [f"What is the tallest mountain in range {i}?" for i in range(50)]

    target = urllib.parse.urlparse(host)

    def request_bytes(method: str, path: str, headers: dict, body: bytes = b"") -> bytes:
        head = [f"{method} {path} HTTP/1.1", f"Host: {target.netloc}"] + [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    class Person(User):
        """One person on one raw keep-alive connection: the request is encoded before the release,
        so the instant costs one send() — Locust's HTTP clients spend too much CPU per request for
        10,000 within a second on 2 cores. Answers are reported through Locust's request event."""
        wait_time = constant(0)

        def read_answer(self, sock) -> tuple[int, dict]:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed before the answer")
                buf += chunk
            head, rest = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
            if "content-length" in headers:
                need = int(headers["content-length"]) - len(rest)
                while need > 0:
                    chunk = sock.recv(min(65536, need))
                    if not chunk:
                        raise ConnectionError("connection closed inside the body")
                    need -= len(chunk)
            elif headers.get("transfer-encoding") == "chunked":
                while not rest.endswith(b"0\r\n\r\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("connection closed inside the body")
                    rest += chunk
            return status, headers

        def fire(self, name: str, began: float, status: int, headers: dict, exc=None):
            class R:  # what Recorder reads of a response
                pass
            r = R()
            r.status_code = status
            r.headers = headers | ({"Retry-After": headers["retry-after"]} if "retry-after" in headers else {})
            self.environment.events.request.fire(request_type="HTTP", name=name, response_time=(time.time() - began) * 1000,
                                                 response_length=0, response=r, context={}, exception=exc, start_time=began)

        @task
        def once(self):
            r = random.Random()
            headers = {"X-Forwarded-For": fake_address(r)}
            if r.random() < qna_share:
                with_token = r.random() < 0.5
                if with_token:
                    headers["Authorization"] = f"Bearer {r.choice(tokens)}"
                name = "qna (token)" if with_token else "qna (no token)"
                payload = json.dumps({"question": r.choice(questions)}).encode()
                wire = request_bytes("POST", "/api/gpt/qna", headers | {"Content-Type": "application/json"}, payload)
            else:
                name = "search"
                wire = request_bytes("GET", "/api/search?limit=20&keyword=" + urllib.parse.quote(r.choice(SEARCH_WORDS)),
                                     headers)
            sock = None
            began = time.time()
            connected = False
            try:
                sock = gevent.socket.create_connection((target.hostname, target.port or 80), timeout=60)
                began = time.time()
                sock.sendall(request_bytes("GET", "/health/live", {}))
                status, h = self.read_answer(sock)
                self.fire("connect (before the spike)", began, status, h)
                ready[0] += 1
                connected = True
                barrier.wait()
                began = time.time()
                sent.append(began)
                sock.sendall(wire)
                status, h = self.read_answer(sock)
                self.fire(name, began, status, h)
            except Exception as e:  # no answer: counted as such
                if not connected:
                    failed[0] += 1
                self.fire(name if connected else "connect (before the spike)", began, 0, {}, exc=e)
            finally:
                if sock is not None:
                    sock.close()
                done[0] += 1
            self.stop()

    recorder = Recorder()
    env = locust_env([Person], host, recorder)
    runner = env.create_local_runner()
    runner.start(count, spawn_rate=env_float("LOAD_SPAWN_RATE", 500))
    deadline = time.time() + env_float("LOAD_LIMIT", 300)
    while ready[0] + failed[0] < count and time.time() < deadline:
        gevent.sleep(0.1)
    print(ready[0], flush=True)
    go = os.path.join(work, "go")
    while not os.path.exists(go) and time.time() < deadline:
        gevent.sleep(0.02)
    with open(go) as f:
        released = float(f.read())
    gevent.sleep(max(0.0, released - time.time()))
    barrier.set()
    while done[0] < ready[0] + failed[0] and time.time() < deadline:
        gevent.sleep(0.1)
    runner.quit()
    report = Report("spike", out, "", False)
    report.scenario = f"spike-driver-{part}"
    html_report(env, report)
    answers = [a for a in recorder.answers if not a.name.startswith("connect")]
    with open(os.path.join(work, f"part-{part}.json"), "w") as f:
        json.dump({"answers": [[a.t, a.name, a.status, a.ms, a.error] for a in answers], "sent": sent,
                   "retry_after_missing": dict(recorder.retry_after_missing)}, f)


SCENARIOS = {"login-storm": login_storm, "data-growth": data_growth, "soak": soak, "spike": spike}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "spike-driver":
        d = argparse.ArgumentParser()
        for flag in ("--host", "--out", "--work"):
            d.add_argument(flag, required=True)
        d.add_argument("--part", type=int, required=True)
        d.add_argument("--count", type=int, required=True)
        a = d.parse_args(sys.argv[2:])
        spike_driver(a.host, a.out, a.part, a.count, a.work)
        return 0
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--host", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--short", action="store_true")
    p.add_argument("--command", default="")
    a = p.parse_args()
    global GATEWAY_PORT
    GATEWAY_PORT = urllib.parse.urlparse(a.host).port or 80
    report = Report(a.scenario, a.out, a.command or f"scripts/load {a.scenario}", a.short)
    SCENARIOS[a.scenario](a.host, report)
    print(f"report: {os.path.join(a.out, a.scenario + '.md')}")
    for what, met, measured in report.verdicts:
        print(f"  {'met   ' if met else 'NOT MET'}  {what}: {measured}")
    if report.hard_failures:
        print("FAILED: " + "; ".join(report.hard_failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
