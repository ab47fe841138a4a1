"""Checks the Grafana dashboards (compose/grafana/dashboards/*.json) against the running stack:
each file loads as a dashboard Grafana can provision (unique uids, the `prometheus` data
source, a grid position per panel), and every query of every panel returns data from the
Prometheus that `scripts/run --observe` started, after traffic that exercises what the panels
show (logins, questions cached and not, a quota rejection, an upload, a dead letter, the nightly
analysis). Run by scripts/test-dashboards.

    python check_dashboards.py --gateway URL --prometheus URL --admin-bin PATH
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DASHBOARDS = sorted(glob.glob(os.path.join(ROOT, "compose/grafana/dashboards/*.json")))


def call(method: str, url: str, body=None, token: str | None = None, raw: bytes | None = None,
         content_type: str = "application/json", auth: tuple[str, str] | None = None) -> tuple[int, dict | str]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, method=method, data=data)
    if data is not None:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if auth:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        status = e.code
    try:
        return status, json.loads(text) if text else {}
    except ValueError:
        return status, text


def expect(what: str, status: int, want: int, body) -> None:
    if status != want:
        raise SystemExit(f"traffic step failed: {what}: {status} (wanted {want}): {body}")


def traffic(gateway: str, admin_bin: str, work: str) -> None:
    """What the panels show, made to happen (each step checked)."""
    email = f"dash-{int(time.time())}@example.com"
    password = "dashboards check passphrase"
    subprocess.run([admin_bin, "user", "create-admin", "--email", email], input=password + "\n", text=True, check=True,
                   capture_output=True)
    s, b = call("POST", f"{gateway}/api/auth/login", {"email": email, "password": "wrong password here"})
    expect("a wrong password", s, 401, b)
    s, b = call("POST", f"{gateway}/api/auth/login", {"email": email, "password": password})
    expect("login", s, 200, b)
    token = b["accessToken"]
    s, b = call("GET", f"{gateway}/api/users/me", token=token)
    expect("me", s, 200, b)
    s, b = call("GET", f"{gateway}/api/no-such-route", token=token)
    expect("an unknown route", s, 404, b)
    # Questions: new ones up to the quota (AIRA_GPT_QUOTA_ADMIN=4 in this run: three asked, one
    # streamed), one more (429), a cached one.
    for i in range(3):
        s, b = call("POST", f"{gateway}/api/gpt/qna", {"question": f"dashboards check question {i} {email}"}, token=token)
        expect(f"question {i}", s, 200, b)
    # A streamed answer through the front door: server-sent events, several of them, then [DONE].
    s, b = call("POST", f"{gateway}/v1/chat/completions",
                {"model": "mock-1", "stream": True, "messages": [{"role": "user", "content": f"stream this {email}"}]}, token=token)
    expect("a streamed chat completion", s, 200, b)
    events = [l for l in str(b).splitlines() if l.startswith("data:")]
    if len(events) < 3 or events[-1].strip() != "data: [DONE]":
        raise SystemExit(f"a streamed answer through nginx did not arrive as events: {str(b)[:300]}")
    s, b = call("POST", f"{gateway}/api/gpt/qna", {"question": f"one question too many {email}"}, token=token)
    expect("a question over the quota", s, 429, b)
    s, b = call("POST", f"{gateway}/api/gpt/qna", {"question": f"dashboards check question 0 {email}"}, token=token)
    expect("a cached question", s, 200, b)
    # An upload (thumbnail queue) and a playlist (audit events).
    clip = os.path.join(work, "clip.mp4")
    if not os.path.exists(clip):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "1",
                        "-pix_fmt", "yuv420p", clip], check=True)
    with open(clip, "rb") as f:
        s, b = call("POST", f"{gateway}/api/videos?title=dashboards", raw=f.read(), token=token,
                    content_type="application/octet-stream")
    expect("an upload", s, 201, b)
    s, b = call("POST", f"{gateway}/api/playlists", {"title": "dashboards"}, token=token)
    expect("a playlist", s, 201, b)
    # A dead letter: bytes that are not an audit event, published to its queue's routing key.
    mgmt = os.environ.get("AIRA_RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
    parts = urllib.parse.urlparse(mgmt)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
    s, b = call("POST", f"{base}/api/exchanges/%2F/aira/publish",
                {"properties": {"type": "audit.event.v1", "delivery_mode": 2}, "routing_key": "audit.dashboards-check",
                 "payload": "not json", "payload_encoding": "string"}, auth=(parts.username or "guest", parts.password or "guest"))
    expect("publishing a message that cannot be read", s, 200, b)
    # The nightly analysis, asked for today (the analyzer checks every AIRA_ANALYZER_CHECK_INTERVAL).
    day = time.strftime("%Y-%m-%d", time.gmtime())
    s, b = call("POST", f"{gateway}/api/admin/analysis/runs", {"day": day, "timezone": "UTC"}, token=token)
    expect("an analysis run", s, 202, b)


def load_dashboards() -> list[dict]:
    problems, dashboards, uids = [], [], set()
    for path in DASHBOARDS:
        name = os.path.basename(path)
        try:
            with open(path) as f:
                d = json.load(f)
        except ValueError as e:
            problems.append(f"{name}: not JSON: {e}")
            continue
        if not d.get("uid") or d["uid"] in uids:
            problems.append(f"{name}: missing or repeated uid {d.get('uid')!r}")
        uids.add(d.get("uid"))
        for key in ("title", "panels", "schemaVersion"):
            if key not in d:
                problems.append(f"{name}: no {key}")
        ids = set()
        for p in d.get("panels", []):
            if p.get("id") in ids:
                problems.append(f"{name}: panel id {p.get('id')} repeated")
            ids.add(p.get("id"))
            if "gridPos" not in p:
                problems.append(f"{name}: panel {p.get('title')!r} has no gridPos")
            if p.get("type") == "row":
                continue
            if p.get("datasource", {}).get("uid") != "prometheus":
                problems.append(f"{name}: panel {p.get('title')!r} does not use the `prometheus` data source")
            if not p.get("targets"):
                problems.append(f"{name}: panel {p.get('title')!r} has no query")
        dashboards.append((name, d))
    if not DASHBOARDS:
        problems.append("no dashboards in compose/grafana/dashboards")
    if problems:
        raise SystemExit("dashboards do not load:\n  " + "\n  ".join(problems))
    return dashboards


def query(prometheus: str, expr: str) -> list:
    # Grafana's interval variables, as a 5-s scrape interval gives them.
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
    s, b = call("GET", f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if s != 200 or not isinstance(b, dict) or b.get("status") != "success":
        raise ValueError(f"query failed ({s}): {b}")
    return b["data"]["result"]


def main() -> int:
    a = argparse.ArgumentParser()
    a.add_argument("--gateway", required=True)
    a.add_argument("--prometheus", required=True)
    a.add_argument("--admin-bin", required=True)
    a.add_argument("--work", default="/tmp")
    a.add_argument("--gateway-ports", default="", help="gateways behind --gateway that must each have served requests")
    a.add_argument("--wait", type=float, default=120, help="seconds to wait for every panel to have data")
    args = a.parse_args()
    dashboards = load_dashboards()
    targets = [(name, p["title"], t["expr"]) for name, d in dashboards for p in d["panels"] if p.get("type") != "row"
               for t in p["targets"]]
    print(f"{len(dashboards)} dashboards, {len(targets)} queries in "
          f"{sum(1 for _, d in dashboards for p in d['panels'] if p.get('type') != 'row')} panels load")
    traffic(args.gateway, args.admin_bin, args.work)
    print("traffic sent; waiting for every query to return data")
    deadline = time.time() + args.wait
    missing = targets
    while True:
        still = []
        for name, title, expr in missing:
            try:
                if not query(args.prometheus, expr):
                    still.append((name, title, expr, "no data"))
            except ValueError as e:
                still.append((name, title, expr, str(e)))
        missing = [(n, t, e) for n, t, e, _ in still]
        if not still or time.time() > deadline:
            break
        time.sleep(5)
    if still:
        print(f"{len(still)} of {len(targets)} queries return no data:")
        for name, title, expr, why in still:
            print(f"  {name} / {title}: {why}\n      {expr}")
        return 1
    print(f"every panel's query returns data ({len(targets)} queries)")
    for port in filter(None, args.gateway_ports.split(",")):
        s, text = call("GET", f"http://127.0.0.1:{port}/metrics")
        served = sum(float(l.rsplit(" ", 1)[1]) for l in str(text).splitlines()
                     if l.startswith("hb_requests{") and 'http_route="/api/' in l)
        if served <= 0:
            print(f"the gateway on port {port} served no API request through the front door")
            return 1
        print(f"the gateway on port {port} served {served:.0f} API requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
