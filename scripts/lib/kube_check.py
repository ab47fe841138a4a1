"""Aira's own checks of a built Kubernetes overlay: what `kubernetes-validate --strict` cannot see.

kubernetes-validate checks each core object against its schema. These checks cover the custom
resources (KEDA, the operators) and how the objects fit together and fit Aira: every
ScaledObject targets a Deployment that exists and a queue the topology declares, RPC consumers
never scale to zero, probes use /health/live and /health/ready on the port the service listens
on, grace periods exceed the service's shutdown time, every Deployment has requests and limits,
a PodDisruptionBudget and a PodMonitor, every Secret and key named exists (or is created by an
operator, or is listed in the overlay's external-secrets.txt), `$(VAR)` references resolve, and
every AIRA_* variable is one docs/configuration.md documents.

    kube_check.py BUILD.yaml --topology TOPOLOGY.json --messaging docs/messaging.md \
        --configuration docs/configuration.md [--external-secrets FILE]

Prints one line per problem and exits 1 if there is any; `--self-test` breaks a correct build
in known ways and checks that each is caught.
"""
import argparse
import copy
import json
import re
import sys

import yaml

KNOWN_CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PodMonitor"), ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
    ("postgresql.cnpg.io/v1", "Cluster"), ("databases.spotahome.com/v1", "RedisFailover"),
}
# Defaults of AIRA_SHUTDOWN_TIMEOUT per executable (docs/configuration.md).
SHUTDOWN_DEFAULT = {"aira-thumbnail-worker": 60}
SHUTDOWN_DEFAULT_ANY = 25
CRON = re.compile(r"^\S+ \S+ \S+ \S+ \S+$")


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(text).strip())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]


def queue_consumers(messaging_md):
    """queue -> executable, from the table "The queues in the system" of docs/messaging.md."""
    out = {}
    for line in messaging_md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or cells[1] not in ("rpc", "work"):
            continue
        consumers = re.findall(r"aira-[a-z-]+", cells[4])
        for q in re.findall(r"`([^`]+)`", cells[0]):
            out[q] = (cells[1], consumers)
    return out


class Build:
    def __init__(self, docs):
        self.docs = [d for d in docs if d]
        self.by_kind = {}
        for d in self.docs:
            self.by_kind.setdefault(d["kind"], []).append(d)

    def all(self, kind):
        return self.by_kind.get(kind, [])

    def get(self, kind, name):
        return next((d for d in self.all(kind) if d["metadata"]["name"] == name), None)


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def pod_labels(obj):
    return obj["spec"]["template"]["metadata"].get("labels", {})


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def env_value(container, name):
    for e in container.get("env", []):
        if e["name"] == name:
            return e.get("value")
    return None


def check(build, topology, consumers, documented, external):
    problems = []
    p = problems.append
    deployments = {d["metadata"]["name"]: d for d in build.all("Deployment")}
    queues = {q["name"]: q for q in topology}
    aira = {n: d for n, d in deployments.items() if pod_labels(d).get("app.kubernetes.io/part-of") == "aira"}

    for (api, kind) in {(d["apiVersion"], d["kind"]) for d in build.docs}:
        if "/" in api and not api.startswith(("apps/", "batch/", "policy/", "networking.k8s.io/", "autoscaling/")) \
                and (api, kind) not in KNOWN_CUSTOM_KINDS:
            p(f"{kind} ({api}): a custom resource these checks do not know")

    # Secrets: in the build, made by an operator, or listed as created out of band.
    secrets = {}
    for s in build.all("Secret"):
        secrets[s["metadata"]["name"]] = set((s.get("data") or {}).keys()) | set((s.get("stringData") or {}).keys())
    for r in build.all("RabbitmqCluster"):
        secrets[r["metadata"]["name"] + "-default-user"] = {"username", "password", "host", "port"}
    for c in build.all("Cluster"):
        secrets[c["metadata"]["name"] + "-app"] = {"username", "password", "uri", "host", "port", "dbname"}
    for name, keys in external.items():
        secrets.setdefault(name, set()).update(keys)

    def secret_ref(where, name, key):
        if name not in secrets:
            p(f"{where}: Secret '{name}' is neither in the build, made by an operator, nor listed in external-secrets.txt")
        elif key is not None and key not in secrets[name]:
            p(f"{where}: Secret '{name}' has no key '{key}'")

    configmaps = {c["metadata"]["name"] for c in build.all("ConfigMap")}
    claims = {c["metadata"]["name"] for c in build.all("PersistentVolumeClaim")}

    for kind in ("Deployment", "Job"):
        for obj in build.all(kind):
            name = obj["metadata"]["name"]
            spec = pod_spec(obj)
            for v in spec.get("volumes", []):
                if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in claims:
                    p(f"{kind} {name}: volume '{v['name']}' claims '{v['persistentVolumeClaim']['claimName']}', which is not in the build")
            for c in spec.get("initContainers", []) + spec["containers"]:
                where = f"{kind} {name}, container {c['name']}"
                res = c.get("resources", {})
                for part in ("requests", "limits"):
                    for r in ("cpu", "memory"):
                        if r not in res.get(part, {}):
                            p(f"{where}: no {part}.{r}")
                defined = set()
                for e in c.get("env", []):
                    for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value") or ""):
                        if ref not in defined:
                            p(f"{where}: {e['name']} uses $({ref}), which is not defined before it")
                    defined.add(e["name"])
                    if e["name"].startswith("AIRA_") and e["name"] not in documented:
                        p(f"{where}: {e['name']} is not documented in docs/configuration.md")
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        secret_ref(f"{where}, env {e['name']}", ref["name"], ref["key"])
                for src in c.get("envFrom", []):
                    if "configMapRef" in src and src["configMapRef"]["name"] not in configmaps:
                        p(f"{where}: envFrom ConfigMap '{src['configMapRef']['name']}' is not in the build")
                    if "secretRef" in src:
                        secret_ref(f"{where}, envFrom", src["secretRef"]["name"], None)

    for name, d in aira.items():
        spec = pod_spec(d)
        c = spec["containers"][0]
        where = f"Deployment {name}"
        ports = {pt.get("name"): pt["containerPort"] for pt in c.get("ports", [])}
        http_port = env_value(c, "AIRA_HTTP_PORT")
        if "http" not in ports:
            p(f"{where}: no container port named http")
        elif http_port is None or int(http_port) != ports["http"]:
            p(f"{where}: port http is {ports['http']} but AIRA_HTTP_PORT is {http_port}")
        for probe, path in (("startupProbe", "/health/live"), ("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
            get = (c.get(probe) or {}).get("httpGet")
            if not get:
                p(f"{where}: no {probe}")
            elif get.get("path") != path or get.get("port") not in ("http", ports.get("http")):
                p(f"{where}: {probe} is {get.get('path')} on {get.get('port')}, expected {path} on http")
        shutdown = seconds(env_value(c, "AIRA_SHUTDOWN_TIMEOUT") or f"{SHUTDOWN_DEFAULT.get(name, SHUTDOWN_DEFAULT_ANY)}s")
        if name == "aira-gateway":  # its longest request is a GPT stream
            shutdown = max(shutdown, seconds(env_value(c, "AIRA_GPT_TIMEOUT") or "60s"))
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pause = int(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= shutdown + pause:
            p(f"{where}: terminationGracePeriodSeconds {grace} does not exceed the shutdown timeout {shutdown:g}s + pre-stop {pause}s")
        if not any(selects(b["spec"]["selector"].get("matchLabels"), pod_labels(d)) for b in build.all("PodDisruptionBudget")):
            p(f"{where}: no PodDisruptionBudget selects it")
        monitors = [m for m in build.all("PodMonitor") if selects(m["spec"]["selector"].get("matchLabels"), pod_labels(d))]
        if not monitors:
            p(f"{where}: no PodMonitor selects it")
        for m in monitors:
            for ep in m["spec"]["podMetricsEndpoints"]:
                if ep.get("port") not in ports or ep.get("path", "/metrics") != "/metrics":
                    p(f"{where}: PodMonitor {m['metadata']['name']} scrapes port {ep.get('port')} path {ep.get('path')}")
        if not any(s["spec"]["scaleTargetRef"]["name"] == name for s in build.all("ScaledObject")):
            p(f"{where}: no ScaledObject scales it")

    for svc in build.all("Service"):
        sel = svc["spec"].get("selector")
        targets = [d for d in deployments.values() if selects(sel, pod_labels(d))]
        if not targets:
            p(f"Service {svc['metadata']['name']}: its selector {sel} matches no Deployment")
        for port in svc["spec"]["ports"]:
            tp = port.get("targetPort")
            for d in targets:
                names = {pt.get("name") for c in pod_spec(d)["containers"] for pt in c.get("ports", [])}
                if isinstance(tp, str) and tp not in names:
                    p(f"Service {svc['metadata']['name']}: targetPort {tp} is not a port of {d['metadata']['name']}")
    for ing in build.all("Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                b = path["backend"]["service"]
                svc = build.get("Service", b["name"])
                if not svc:
                    p(f"Ingress {ing['metadata']['name']}: backend Service {b['name']} is not in the build")
                elif b["port"].get("name") and b["port"]["name"] not in {x.get("name") for x in svc["spec"]["ports"]}:
                    p(f"Ingress {ing['metadata']['name']}: Service {b['name']} has no port {b['port']['name']}")
        for tls in ing["spec"].get("tls", []):
            secret_ref(f"Ingress {ing['metadata']['name']}, tls", tls["secretName"], None)

    auths = {a["metadata"]["name"]: a for a in build.all("TriggerAuthentication")}
    for a in auths.values():
        for ref in a["spec"].get("secretTargetRef", []):
            secret_ref(f"TriggerAuthentication {a['metadata']['name']}", ref["name"], ref["key"])
    rabbits = {r["metadata"]["name"] for r in build.all("RabbitmqCluster")}
    for so in build.all("ScaledObject"):
        name = so["metadata"]["name"]
        ns = so["metadata"].get("namespace")
        where = f"ScaledObject {name}"
        target = so["spec"].get("scaleTargetRef", {}).get("name")
        if target not in deployments:
            p(f"{where}: targets Deployment '{target}', which is not in the build")
            continue
        lo, hi = so["spec"].get("minReplicaCount", 0), so["spec"].get("maxReplicaCount", 100)
        if lo > hi:
            p(f"{where}: minReplicaCount {lo} > maxReplicaCount {hi}")
        triggers = so["spec"].get("triggers") or []
        if not triggers:
            p(f"{where}: no triggers")
        consumed = {q for q, (_, who) in consumers.items() if target in who}
        scaled_on = set()
        for t in triggers:
            md = t.get("metadata", {})
            if t["type"] == "rabbitmq":
                q = md.get("queueName")
                scaled_on.add(q)
                if q not in queues:
                    p(f"{where}: queue '{q}' is not in Aira's topology (aira-admin topology)")
                if md.get("mode") != "QueueLength":
                    p(f"{where}: trigger on {q} has mode {md.get('mode')}, expected QueueLength")
                try:
                    if float(md.get("value", "0")) <= 0:
                        raise ValueError
                except ValueError:
                    p(f"{where}: trigger on {q} has no positive value")
                host = md.get("host", "")
                m = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:15672/", host)
                if md.get("protocol") != "http" or not m:
                    p(f"{where}: trigger on {q} must read the management API (protocol http, host http://SERVICE.NAMESPACE.svc:15672/), not '{host}'")
                else:
                    if m.group(1) not in rabbits:
                        p(f"{where}: host names Service {m.group(1)}, not a RabbitmqCluster of the build")
                    if m.group(2) != ns:
                        p(f"{where}: host names namespace {m.group(2)}, but the object is in {ns}")
                ref = (t.get("authenticationRef") or {}).get("name")
                if ref not in auths:
                    p(f"{where}: authenticationRef '{ref}' is not a TriggerAuthentication of the build")
            elif t["type"] == "cron":
                for k in ("timezone", "start", "end", "desiredReplicas"):
                    if k not in md:
                        p(f"{where}: cron trigger without {k}")
                for k in ("start", "end"):
                    if k in md and not CRON.match(md[k]):
                        p(f"{where}: cron {k} '{md[k]}' is not a five-field schedule")
                if int(md.get("desiredReplicas", "0")) > hi:
                    p(f"{where}: cron wants {md.get('desiredReplicas')} replicas, above maxReplicaCount {hi}")
            elif t["type"] == "prometheus":
                for k in ("serverAddress", "query", "threshold"):
                    if k not in md:
                        p(f"{where}: prometheus trigger without {k}")
                if f'namespace="{ns}"' not in md.get("query", ""):
                    p(f"{where}: the Prometheus query does not select namespace=\"{ns}\"")
            else:
                p(f"{where}: trigger type {t['type']} is not one these checks know")
        if consumed - scaled_on and any(t["type"] == "rabbitmq" for t in triggers):
            p(f"{where}: {target} consumes {sorted(consumed - scaled_on)} but is not scaled on it")
        foreign = sorted(q for q in scaled_on if q in consumers and target not in consumers[q][1])
        if foreign:
            p(f"{where}: scaled on queues {target} does not consume: {foreign}")
        if any(queues.get(q, {}).get("kind") == "rpc" for q in consumed) and lo < 1:
            p(f"{where}: {target} consumes an RPC queue but may scale to zero (minReplicaCount {lo})")

    for rf in build.all("RedisFailover"):
        sp = rf["spec"].get("auth", {}).get("secretPath")
        if sp:
            secret_ref(f"RedisFailover {rf['metadata']['name']}", sp, "password")
    # Where the services look for the backing services matches what the operators create.
    services = {s["metadata"]["name"] for s in build.all("Service")}
    services |= {r + x for r in rabbits for x in ("", "-nodes")}
    services |= {c["metadata"]["name"] + x for c in build.all("Cluster") for x in ("-rw", "-ro", "-r")}
    services |= {"rfs-" + r["metadata"]["name"] for r in build.all("RedisFailover")}
    for name, d in aira.items():
        c = pod_spec(d)["containers"][0]
        for var, pattern in (("AIRA_AMQP_URL", r"@([a-z0-9-]+):"), ("AIRA_REDIS_URL", r"@([a-z0-9-]+):"),
                             ("AIRA_DATABASE_URL", r"host=([a-z0-9-]+)"), ("AIRA_DATABASE_READ_URL", r"host=([a-z0-9-]+)"),
                             ("AIRA_GPT_UPSTREAM_URL", r"^http://([a-z0-9-]+):")):
            v = env_value(c, var)
            m = re.search(pattern, v or "")
            if var != "AIRA_GPT_UPSTREAM_URL" and v is None:
                p(f"Deployment {name}: no {var}")
            elif m and m.group(1) not in services:
                p(f"Deployment {name}: {var} names host {m.group(1)}, which no Service or operator of the build provides")
    return problems


def load_external(path):
    out = {}
    if path:
        for line in open(path):
            line = line.split("#", 1)[0].split()
            if line:
                out[line[0]] = set(line[1:])
    return out


def self_test(docs, topology, consumers, documented, external):
    """Each break of a correct build must be reported."""
    def broken(change):
        b = Build(copy.deepcopy(docs))
        change(b)
        return check(Build(b.docs), topology, consumers, documented, external)

    def first(b, kind, name=None):
        return next(x for x in b.all(kind) if name is None or x["metadata"]["name"] == name)

    cases = {
        "a ScaledObject on a queue the topology lacks": (lambda b: first(b, "ScaledObject", "aira-audit-writer")["spec"]["triggers"][0]["metadata"].update(queueName="audit.typo"), "not in Aira's topology"),
        "an RPC consumer allowed to scale to zero": (lambda b: first(b, "ScaledObject", "aira-auth")["spec"].update(minReplicaCount=0), "scale to zero"),
        "a ScaledObject targeting a missing Deployment": (lambda b: first(b, "ScaledObject", "aira-email-worker")["spec"]["scaleTargetRef"].update(name="aira-mailer"), "not in the build"),
        "a grace period below the shutdown timeout": (lambda b: pod_spec(first(b, "Deployment", "aira-thumbnail-worker")).update(terminationGracePeriodSeconds=30), "does not exceed"),
        "a readiness probe on the liveness path": (lambda b: pod_spec(first(b, "Deployment", "aira-auth"))["containers"][0]["readinessProbe"]["httpGet"].update(path="/health/live"), "readinessProbe"),
        "a probe port different from AIRA_HTTP_PORT": (lambda b: pod_spec(first(b, "Deployment", "aira-analyzer"))["containers"][0]["ports"][0].update(containerPort=9999), "AIRA_HTTP_PORT"),
        "a missing PodDisruptionBudget": (lambda b: b.docs.remove(first(b, "PodDisruptionBudget", "aira-gateway")), "no PodDisruptionBudget"),
        "a missing memory limit": (lambda b: pod_spec(first(b, "Deployment", "aira-gpt-proxy"))["containers"][0]["resources"]["limits"].pop("memory"), "limits.memory"),
        "an unknown Secret": (lambda b: pod_spec(first(b, "Deployment", "aira-auth"))["containers"][0]["env"].append({"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}), "Secret 'nope'"),
        "an undocumented AIRA_ variable": (lambda b: pod_spec(first(b, "Deployment", "aira-auth"))["containers"][0]["env"].append({"name": "AIRA_BCRYPT_THREAD", "value": "2"}), "not documented"),
        "a $(VAR) used before it is defined": (lambda b: pod_spec(first(b, "Deployment", "aira-auth"))["containers"][0]["env"].insert(0, {"name": "AIRA_LOG_LEVEL", "value": "$(RABBITMQ_PASSWORD)"}), "not defined before it"),
        "a KEDA host in another namespace": (lambda b: first(b, "ScaledObject", "aira-analyzer")["spec"]["triggers"][0]["metadata"].update(host="http://aira-rabbitmq.elsewhere.svc:15672/"), "namespace elsewhere"),
        "a Redis URL naming no sentinel Service": (lambda b: next(e for e in pod_spec(first(b, "Deployment", "aira-gateway"))["containers"][0]["env"] if e["name"] == "AIRA_REDIS_URL").update(value="redis-sentinel://:x@rfs-other:26379/0#mymaster"), "rfs-other"),
    }
    failed = 0
    for what, (change, expected) in cases.items():
        found = broken(change)
        if not any(expected in f for f in found):
            print(f"self-test: {what}: not reported (expected a problem containing '{expected}'; got {found})")
            failed += 1
    clean = check(Build(copy.deepcopy(docs)), topology, consumers, documented, external)
    if clean:
        print(f"self-test: the unbroken build has problems: {clean}")
        failed += 1
    print(f"self-test: all {len(cases)} breaks reported, the unbroken build clean" if not failed else f"self-test: {failed} failure(s)")
    return failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--topology", required=True)
    ap.add_argument("--messaging", required=True)
    ap.add_argument("--configuration", required=True)
    ap.add_argument("--external-secrets")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    docs = [d for d in yaml.safe_load_all(open(a.build)) if d]
    topology = json.load(open(a.topology))
    consumers = queue_consumers(open(a.messaging).read())
    documented = set(re.findall(r"`(AIRA_[A-Z0-9_]+)`", open(a.configuration).read()))
    external = load_external(a.external_secrets)
    if a.self_test:
        sys.exit(1 if self_test(docs, topology, consumers, documented, external) else 0)
    problems = check(Build(docs), topology, consumers, documented, external)
    for x in problems:
        print(x)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
