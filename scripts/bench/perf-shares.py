#!/usr/bin/env python3
"""Where a process's CPU goes, from `perf script | swift demangle --simplified` on stdin.

Prints, for each part of the request path, the share of samples whose call stack contains it
(inclusive: a sample can count for several parts, e.g. a JSON decode inside the RPC lane), and
the samples per thread. Used by `BENCH_PROFILE=1 scripts/bench-gpt`; the parts are named as in
docs/benchmarks.md.
"""
import collections
import re
import sys

PARTS = [
    ("HTTP: NIO <-> Swift concurrency bridge", r"NIOAsyncChannel|NIOAsyncWriter|NIOThrowingAsyncSequenceProducer"),
    ("HTTP: parsing", r"BetterHTTPParser|HTTPDecoder"),
    ("HTTP: response encoding", r"HTTPResponseEncoder"),
    ("socket writes", r"Socket\.write"),
    ("request middleware", r"RequestMiddleware"),
    ("JWT check", r"Authenticate"),
    ("rate limit", r"RateLimit"),
    ("GPT routes", r"GPTRoutes"),
    ("RPC client / batch lane", r"RPCClient|RPCBatchLane"),
    ("RPC server", r"RPCServer"),
    ("GPT service", r"GPTService"),
    ("cache key", r"CacheKey\.init"),
    ("answer store (Redis)", r"AnswerStore"),
    ("audit trail", r"AuditTrail|AuditEvent|AuditBatch"),
    ("JSON decode (MessageCoding)", r"MessageCoding\.decode"),
    ("JSON encode (MessageCoding)", r"MessageCoding\.encode"),
    ("Foundation JSON", r"JSONEncoder|JSONDecoder"),
    ("AMQP connection thread", r"AMQPSession"),
    ("Redis connection thread", r"OwnerThread|Mailbox|AutoPipeline"),
    ("logging", r"Logger|LogHandler"),
    ("retain/release", r"swift_retain|swift_release"),
    ("generic metadata, casts", r"getGenericMetadata|swift_getWitnessTable|conformsToProtocol|dynamicCast"),
    ("kernel", r"\[kernel"),
]


def main() -> None:
    compiled = [(name, re.compile(pattern)) for name, pattern in PARTS]
    hits = collections.Counter()
    threads = collections.Counter()
    total = 0
    stack: list[str] = []
    thread = "?"

    def flush() -> None:
        nonlocal total
        if not stack:
            return
        total += 1
        threads[thread] += 1
        text = "\n".join(stack)
        for name, rx in compiled:
            if rx.search(text):
                hits[name] += 1

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            stack.clear()
            continue
        if line[0] not in " \t":
            thread = line.split()[0] if line.split() else "?"
            continue
        stack.append(line.strip())
    flush()
    if total == 0:
        print("no samples")
        return
    print(f"{total} samples")
    print("| part of the path | share of samples (inclusive) |")
    print("|---|---|")
    for name, _ in PARTS:
        if hits[name]:
            print(f"| {name} | {100 * hits[name] / total:.1f} % |")
    print("threads: " + ", ".join(f"{t} {100 * n / total:.0f} %" for t, n in threads.most_common(6)))


if __name__ == "__main__":
    main()
