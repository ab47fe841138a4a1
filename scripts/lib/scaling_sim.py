"""Replays a day of traffic against KEDA + HPA scaling rules (scripts/k8s-simulate).

The model, step by step (one step = 15 s, KEDA's pollingInterval and the HPA's sync period):

* Each queue worker has a backlog B of messages waiting. Per second, arrivals add the traffic's
  rate; each *ready* pod removes its measured throughput mu. Besides the backlog, messages are
  in flight (delivered, not yet acknowledged): by Little's law, arrivals x the time one takes
  at full concurrency c (c / mu), at most ready pods x c. KEDA's `QueueLength` over the
  management API reads both (`messages` = ready + unacknowledged).
* KEDA turns each trigger into an HPA metric: a rabbitmq trigger's desired replicas are
  ceil((B + in flight) / value) (an AverageValue target; value = one pod's concurrency c), a prometheus trigger's ceil(rate / threshold), a
  cron trigger's is desiredReplicas inside its window. The HPA takes the largest, skips changes
  within its 10 % tolerance, clamps to [min, max], limits scale-up by the ScaledObject's policies
  (the larger of +100 % and +4 pods per 15 s), and scales down only to the highest
  recommendation of the stabilization window, by at most 50 % per 60 s.
* A new pod is ready `--pod-start` seconds after the decision (scheduling, image present,
  the Swift process's start and first readiness probe); a removed pod stops taking work at once.

The day (deploy/kubernetes/simulation/day.csv) gives, per minute, the arrival rate of every
queue and the gateway's request rate; the rates are linear between rows.
"""
import argparse
import csv
import math
import os

import yaml

STEP = 15

# Per-pod throughput (units of the queue per second), from docs/benchmarks.md; each row says where.
THROUGHPUT = {
    # bench-auth: 20.0 logins/s with 2 bcrypt threads at cost 10 (a pod has 2 CPUs).
    "auth.credentials": 20.0,
    # refresh/logout/sessions: one PostgreSQL statement each; far above what the day sends.
    "auth.sessions": 500.0,
    # bench-gpt uncached phase: 32 upstream calls at once / 0.8 s upstream latency = 40 questions/s;
    # with the measured half of questions answered from the cache, 80 per pod.
    "gpt.ask": 80.0,
    # bench-audit: 17,000-33,000 stored events/s per writer; ~20 events per audit.batch message.
    "audit.events": 850.0,
    # thumbnail worker: 2 ffmpeg runs at once, ~2 s per 320-px thumbnail of a short clip.
    "thumbnail.generate": 1.0,
    # email worker: 4 SMTP sessions at once, ~0.2 s each.
    "email.send": 20.0,
    # bench-analyzer: 1,236-1,489 users/s per analyzer (one of two cores busy with the database).
    "analysis.user": 1200.0,
}
GATEWAY_PER_POD = 1500.0  # req/s a gateway pod serves at its CPU request (docs/kubernetes.md)


class Scaler:
    def __init__(self, so, pod_start):
        sp = so["spec"]
        self.name = sp["scaleTargetRef"]["name"]
        self.min = sp.get("minReplicaCount", 0)
        self.max = sp.get("maxReplicaCount", 100)
        self.triggers = sp["triggers"]
        beh = sp.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
        self.down_window = beh.get("scaleDown", {}).get("stabilizationWindowSeconds", 300)
        self.pod_start = pod_start
        self.replicas = max(self.min, 1)  # desired (what the Deployment asks for)
        self.ready = [(-10**9)] * self.replicas  # when each pod became/becomes ready
        self.recommendations = []  # (time, desired) for the scale-down window
        self.last_down = -10**9

    def queues(self):
        return [t["metadata"]["queueName"] for t in self.triggers if t["type"] == "rabbitmq"]

    def ready_count(self, now):
        return sum(1 for r in self.ready if r <= now)

    def concurrency(self, queue):
        return next(float(t["metadata"]["value"]) for t in self.triggers
                    if t["type"] == "rabbitmq" and t["metadata"]["queueName"] == queue)

    def decide(self, now, minute_of_day, backlog, inflight, gateway_rate):
        wants = []
        for t in self.triggers:
            md = t["metadata"]
            if t["type"] == "rabbitmq":
                q = md["queueName"]
                wants.append(math.ceil((backlog[q] + inflight[q]) / float(md["value"])))
            elif t["type"] == "prometheus":
                wants.append(math.ceil(gateway_rate / float(md["threshold"])))
            elif t["type"] == "cron":
                start = cron_minute(md["start"])
                end = cron_minute(md["end"])
                inside = start <= minute_of_day or minute_of_day < end if start > end else start <= minute_of_day < end
                wants.append(int(md["desiredReplicas"]) if inside else 0)
        desired = max(wants) if wants else self.replicas
        current = self.replicas
        # HPA tolerance: no change when the metric is within 10 % of the target.
        if current and abs(desired / current - 1) <= 0.1:
            desired = current
        desired = max(self.min, min(self.max, desired))
        self.recommendations = [(t, d) for t, d in self.recommendations if t > now - self.down_window]
        self.recommendations.append((now, desired))
        if desired > current:
            desired = min(desired, max(current * 2, current + 4))
            self.ready += [now + self.pod_start] * (desired - current)
            self.replicas = desired
        elif desired < current:
            stable = max(d for _, d in self.recommendations)
            if stable < current and now - self.last_down >= 60:
                target = max(stable, math.ceil(current * 0.5))
                # The newest pods go first.
                self.ready = sorted(self.ready)[:target]
                self.replicas = target
                self.last_down = now


def cron_minute(expr):
    minute, hour = expr.split()[:2]
    return int(hour) * 60 + int(minute)


def load_day(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            parts = [int(x) for x in r.pop("time").split(":")]
            minute = parts[0] * 60 + parts[1] + (parts[2] / 60 if len(parts) > 2 else 0)
            rows.append((minute, {k: float(v) for k, v in r.items()}))
    rows.sort(key=lambda x: x[0])
    return rows


def rate_at(rows, minute, key):
    for (m0, r0), (m1, r1) in zip(rows, rows[1:]):
        if m0 <= minute < m1:
            return r0[key] + (r1[key] - r0[key]) * (minute - m0) / (m1 - m0)
    return rows[-1][1][key]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--day", required=True)
    ap.add_argument("--pod-start", type=float, default=20)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    objs = [d for d in yaml.safe_load_all(open(a.build)) if d]
    scalers = [Scaler(o, a.pod_start) for o in objs if o["kind"] == "ScaledObject"]
    day = load_day(a.day)
    # The day runs from 12:00 to 12:00 the next day, so the nightly window sits in the middle.
    start_minute = 12 * 60
    steps = 24 * 3600 // STEP
    backlog = {q: 0.0 for q in THROUGHPUT}
    inflight = {q: 0.0 for q in THROUGHPUT}
    series = {s.name: {"t": [], "replicas": [], "ready": [], "depth": [], "load": [], "wait": []} for s in scalers}
    done = {q: 0.0 for q in THROUGHPUT}
    arrived = {q: 0.0 for q in THROUGHPUT}
    cumulative = {q: ([], []) for q in THROUGHPUT}  # arrived, served, per step
    for i in range(steps):
        now = i * STEP
        minute = (start_minute + now / 60) % 1440
        gateway_rate = rate_at(day, minute, "gateway")
        for s in scalers:
            s.decide(now, minute, backlog, inflight, gateway_rate)
        for s in scalers:
            ready = s.ready_count(now)
            for q in s.queues():
                lam = rate_at(day, minute, q)
                arrived[q] += lam * STEP
                capacity = ready * THROUGHPUT[q] * STEP
                served = min(backlog[q] + lam * STEP, capacity)
                done[q] += served
                backlog[q] = max(0.0, backlog[q] + lam * STEP - served)
                c = s.concurrency(q)
                inflight[q] = min(ready * c, lam * c / THROUGHPUT[q]) if backlog[q] == 0 else ready * c
                cumulative[q][0].append(arrived[q])
                cumulative[q][1].append(done[q])
            main_q = s.queues()[0] if s.queues() else None
            ser = series[s.name]
            ser["t"].append((start_minute * 60 + now) / 3600)
            ser["replicas"].append(s.replicas)
            ser["ready"].append(ready)
            if main_q:
                ser["depth"].append(backlog[main_q])
                ser["load"].append(rate_at(day, minute, main_q))
                ser["wait"].append(0)
            else:
                ser["depth"].append(0)
                ser["load"].append(gateway_rate)
                ser["wait"].append(0 if ready * GATEWAY_PER_POD >= gateway_rate else float("inf"))
    # The wait a message arriving in step i had (first in, first out): until what was served
    # caught up with what had arrived by then.
    for s in scalers:
        if not s.queues():
            continue
        arr, srv = cumulative[s.queues()[0]]
        j = 0
        waits = []
        for i in range(len(arr)):
            j = max(j, i)
            while j < len(srv) and srv[j] + 1e-6 < arr[i]:
                j += 1
            waits.append((j - i) * STEP)
        series[s.name]["wait"] = waits
    write_outputs(a.out, scalers, series, day)


def write_outputs(out, scalers, series, day):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in scalers]
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 2.3 * len(names)), sharex=True)
    for ax, s in zip(axes, scalers):
        ser = series[s.name]
        ax.step(ser["t"], ser["replicas"], where="post", color="tab:blue", label="replicas")
        ax.set_ylabel("replicas", color="tab:blue")
        ax.set_ylim(0, max(ser["replicas"]) + 1)
        ax2 = ax.twinx()
        if s.queues():
            ax2.plot(ser["t"], ser["depth"], color="tab:red", lw=0.8, label="queue depth")
            ax2.set_ylabel(f"{s.queues()[0]}\ndepth", color="tab:red", fontsize=8)
        else:
            ax2.plot(ser["t"], ser["load"], color="tab:green", lw=0.8, label="requests/s")
            ax2.set_ylabel("requests/s", color="tab:green", fontsize=8)
        ax.set_title(s.name, fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("hour of day (12:00 to 12:00 the next day)")
    axes[-1].set_xticks(range(12, 37, 2))
    axes[-1].set_xticklabels([f"{h % 24:02d}:00" for h in range(12, 37, 2)])
    fig.suptitle("Aira on Kubernetes: one simulated day (KEDA + HPA rules, per-pod throughput from docs/benchmarks.md)", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scaling-day.png"), dpi=90)
    plt.close(fig)

    # Zooms: the spike at 20:00 and the nightly window.
    windows = [("the spike at 20:00", 19.8, 20.8, ["aira-gateway", "aira-auth", "aira-thumbnail-worker"]),
               ("the nightly run at 00:00", 23.75, 24.5, ["aira-analyzer"])]
    fig, axes = plt.subplots(1 + 3, 1, figsize=(12, 9))
    rows = [(windows[0], n) for n in windows[0][3]] + [(windows[1], "aira-analyzer")]
    for ax, ((title, lo, hi, _), name) in zip(axes, rows):
        ser = series[name]
        idx = [i for i, t in enumerate(ser["t"]) if lo <= t <= hi]
        t = [ser["t"][i] for i in idx]
        ax.step(t, [ser["replicas"][i] for i in idx], where="post", color="tab:blue", label="replicas (desired)")
        ax.step(t, [ser["ready"][i] for i in idx], where="post", color="tab:cyan", ls="--", label="ready")
        ax.set_ylabel("replicas")
        ax2 = ax.twinx()
        if name == "aira-gateway":
            ax2.plot(t, [ser["load"][i] for i in idx], color="tab:green", lw=1, label="requests/s")
            ax2.set_ylabel("requests/s", fontsize=8)
        else:
            ax2.plot(t, [ser["depth"][i] for i in idx], color="tab:red", lw=1, label="queue depth")
            ax2.set_ylabel("depth", fontsize=8)
        ax.set_title(f"{name}: {title}", fontsize=9, loc="left")
        ax.set_xticks([x / 12 for x in range(int(lo * 12), int(hi * 12) + 1)])
        ax.set_xticklabels([f"{int(x / 12) % 24:02d}:{(x % 12) * 5:02d}" for x in range(int(lo * 12), int(hi * 12) + 1)], fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scaling-windows.png"), dpi=90)
    plt.close(fig)

    lines = ["| Deployment | replicas min–max (day) | largest queue depth | longest wait in queue (at 15-s resolution) | pod-hours (day) | pod-hours at fixed peak size |",
             "|---|---|---|---|---|---|"]
    for s in scalers:
        ser = series[s.name]
        hours = sum(ser["replicas"]) * STEP / 3600
        waits = [w for w in ser["wait"] if w != float("inf")]
        depth = f"{max(ser['depth']):,.0f} ({s.queues()[0]})" if s.queues() else "—"
        wait = f"{max(waits):.1f} s" if s.queues() else "—"
        lines.append(f"| {s.name} | {min(ser['replicas'])}–{max(ser['replicas'])} | {depth} | {wait} | {hours:.1f} | {max(ser['replicas']) * 24} |")
    with open(os.path.join(out, "scaling-summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
