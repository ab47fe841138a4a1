"""scripts/bench-budget's load: N questions at once against a budget, through the gateway.

usage: budget.py GATEWAY_URL SCENARIO REQUESTS USERS LIMIT UNIT PRICE_IN PRICE_OUT NAMESPACE REDIS_URL

Signs up and logs in USERS users, then sends REQUESTS questions at once (each new, cache
bypassed, max_tokens 16-64), spread over the users. Prints one JSON line: what was answered and
refused, the tokens and cost the answers report, the budget counter in Redis afterwards, the
overspend (counter - limit, when positive) and the largest bound one question reserved.
Bounded: every request has a 60 s timeout, the whole run 300 s.
"""
import asyncio
import json
import random
import subprocess
import sys
import time
import uuid

import httpx

gateway, scenario, requests_n, users_n, limit, unit, price_in, price_out, namespace, redis_url = sys.argv[1:11]
requests_n, users_n, limit = int(requests_n), int(users_n), int(limit)
price_in, price_out = float(price_in), float(price_out)


def bound(messages, max_tokens):
    """RequestBound.promptTokens + max_tokens (Shared/AiraLLM/Budgets.swift)."""
    prompt = 3 + sum(4 + len(m["role"].encode()) + len(m["content"].encode()) for m in messages)
    return prompt + max_tokens, prompt


def cost(prompt, completion):
    """µ$, rounded up as ModelPrice.cost does."""
    import math
    return math.ceil(prompt * price_in + completion * price_out)


async def session(client, i):
    email = f"bench-budget-{uuid.uuid4().hex[:10]}-{i}@example.com"
    password = "bench-budget-password"
    for _ in range(50):
        r = await client.post("/api/auth/signup", json={"email": email, "password": password})
        if r.status_code in (201, 409):
            break
        await asyncio.sleep(0.2)
    r = await client.post("/api/auth/login", json={"email": email, "password": password})
    r.raise_for_status()
    body = r.json()
    return body["accessToken"], body["user"]["id"]


async def main():
    limits = httpx.Limits(max_connections=requests_n + 10, max_keepalive_connections=requests_n + 10)
    async with httpx.AsyncClient(base_url=gateway, timeout=60, limits=limits) as client:
        sessions = []
        for i in range(users_n):
            sessions.append(await session(client, i))
        rng = random.Random(7)
        plan = []
        for i in range(requests_n):
            token, user = sessions[i % users_n]
            messages = [{"role": "user", "content": f"{scenario} {namespace} question {i}: how much does this cost?"}]
            max_tokens = rng.randint(16, 64)
            plan.append((token, user, messages, max_tokens))
        largest_tokens = max(bound(m, t)[0] for _, _, m, t in plan)
        largest_cost = max(cost(bound(m, t)[1], t) for _, _, m, t in plan)

        async def ask(token, messages, max_tokens):
            try:
                r = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {token}", "X-Aira-Cache": "bypass"},
                                      json={"messages": messages, "max_tokens": max_tokens})
            except httpx.HTTPError as e:
                return "error", type(e).__name__, None
            if r.status_code == 200:
                return 200, None, r.json().get("usage")
            code = None
            try:
                code = r.json()["error"]["code"]
            except Exception:
                pass
            return r.status_code, code, None

        started = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*(ask(t, m, x) for t, _, m, x in plan)), timeout=300)
        wall = time.monotonic() - started

    answered = [u for s, _, u in results if s == 200]
    refused = sum(1 for s, c, _ in results if s == 429 and c == "budget_exceeded")
    others = {}
    for s, c, _ in results:
        if s != 200 and not (s == 429 and c == "budget_exceeded"):
            others[f"{s} {c}"] = others.get(f"{s} {c}", 0) + 1
    tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for u in answered if u)
    money = sum(cost(u["prompt_tokens"], u["completion_tokens"]) for u in answered if u)
    over_max = sum(1 for (s, _, u), (_, _, _, x) in zip(results, plan) if s == 200 and u and u["completion_tokens"] > x)

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


asyncio.run(main())
