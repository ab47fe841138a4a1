"""scripts/bench-budget's load: N questions at once against a budget, through the gateway.

usage: budget.py GATEWAY_URL SCENARIO REQUESTS USERS LIMIT UNIT PRICE_IN PRICE_OUT NAMESPACE REDIS_URL

Signs up and logs in USERS users, then sends REQUESTS questions at once (each new, cache
bypassed, max_tokens 16-64), spread over the users. Prints one JSON line: what was answered and
refused, the tokens and cost the answers report, the budget counter in Redis afterwards, the
overspend (counter - limit, when positive) and the largest bound one question reserved.
Bounded: every request has a 60 s timeout, the whole run 300 s. One thread and one connection per
question (http.client), released together at a barrier: truly at once, which an asyncio client
with a connection pool of 500 was not (it issued about 40 a second).
"""
import http.client
import json
import math
import random
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

gateway, scenario, requests_n, users_n, limit, unit, price_in, price_out, namespace, redis_url = sys.argv[1:11]
requests_n, users_n, limit = int(requests_n), int(users_n), int(limit)
price_in, price_out = float(price_in), float(price_out)
host = urllib.parse.urlparse(gateway)


def bound(messages, max_tokens):
    """RequestBound.promptTokens + max_tokens (Shared/AiraLLM/Budgets.swift)."""
    prompt = 3 + sum(4 + len(m["role"].encode()) + len(m["content"].encode()) for m in messages)
    return prompt + max_tokens, prompt


def cost(prompt, completion):
    """µ$, rounded up as ModelPrice.cost does."""
    return math.ceil(prompt * price_in + completion * price_out)


def post(conn, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
        headers["X-Aira-Cache"] = "bypass"
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    r = conn.getresponse()
    data = r.read()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, {}


def session(i):
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    email = f"bench-budget-{uuid.uuid4().hex[:10]}-{i}@example.com"
    password = "bench-budget-password"
    for _ in range(50):
        status, _ = post(conn, "/api/auth/signup", {"email": email, "password": password})
        if status in (201, 409):
            break
        time.sleep(0.2)
    status, body = post(conn, "/api/auth/login", {"email": email, "password": password})
    if status != 200:
        raise SystemExit(f"login: HTTP {status} {body}")
    conn.close()
    return body["accessToken"], body["user"]["id"]


def main():
    sessions = [session(i) for i in range(users_n)]
    rng = random.Random(7)
    plan = []
    for i in range(requests_n):
        token, user = sessions[i % users_n]
        messages = [{"role": "user", "content": f"{scenario} {namespace} question {i}: how much does this cost?"}]
        plan.append((token, messages, rng.randint(16, 64)))
    largest_tokens = max(bound(m, t)[0] for _, m, t in plan)
    largest_cost = max(cost(bound(m, t)[1], t) for _, m, t in plan)

    # One thread and one open connection per question; every thread waits at a barrier, so
    # the questions leave together (and the gateway's accept queue is not in the way).
    results = [None] * requests_n
    conns = [http.client.HTTPConnection(host.hostname, host.port, timeout=60) for _ in range(requests_n)]
    for c in conns:
        c.connect()
    barrier = threading.Barrier(requests_n + 1)

    def ask(i):
        token, messages, max_tokens = plan[i]
        barrier.wait()
        try:
            status, body = post(conns[i], "/v1/chat/completions", {"messages": messages, "max_tokens": max_tokens}, token)
        except (OSError, http.client.HTTPException) as e:
            results[i] = ("error", type(e).__name__, None)
            return
        if status == 200:
            results[i] = (200, None, body.get("usage"))
        else:
            results[i] = (status, (body.get("error") or {}).get("code"), None)

    threads = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(requests_n)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.monotonic()
    for t in threads:
        t.join(timeout=300)
    wall = time.monotonic() - started
    for c in conns:
        c.close()
    results = [r or ("error", "no reply", None) for r in results]

    answered = [u for s, _, u in results if s == 200]
    refused = sum(1 for s, c, _ in results if s == 429 and c == "budget_exceeded")
    others = {}
    for s, c, _ in results:
        if s != 200 and not (s == 429 and c == "budget_exceeded"):
            others[f"{s} {c}"] = others.get(f"{s} {c}", 0) + 1
    tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for u in answered if u)
    money = sum(cost(u["prompt_tokens"], u["completion_tokens"]) for u in answered if u)
    over_max = sum(1 for (s, _, u), (_, _, x) in zip(results, plan) if s == 200 and u and u["completion_tokens"] > x)

    day = time.strftime("d%Y%m%d", time.gmtime())
    if scenario.startswith("user"):
        key = f"gpt:budget:{namespace}:u:{sessions[0][1].lower()}:{day}:{unit}"
    else:
        key = f"gpt:budget:{namespace}:g:{day}:{unit}"
    out = subprocess.run(["redis-cli", "-u", redis_url, "GET", key], capture_output=True, text=True, timeout=10)
    counter = int(out.stdout.strip() or 0)
    spent = tokens if unit == "tokens" else money
    print(json.dumps({
        "scenario": scenario, "requests": requests_n, "users": users_n, "answered": len(answered), "refused": refused,
        "others": others, "limit": limit, "unit": unit, "counter": counter, "spent_by_answers": spent,
        "overspend": max(0, counter - limit), "largest_bound": largest_tokens if unit == "tokens" else largest_cost,
        "answers_over_max_tokens": over_max, "wall_s": round(wall, 2),
    }))


main()
