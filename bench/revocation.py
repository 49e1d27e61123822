#!/usr/bin/env python3
"""Revocation propagation between two LeadGen instances sharing one database.

    bench/revocation.py HOST:PORT_A HOST:PORT_B [iterations]

Signs up one account on A, then each iteration: signs in on A, checks the access token works on B,
signs out everywhere on A (POST /auth/v1/logout?scope=global -> 204), and polls GET /auth/v1/user
on B with that token until it answers 401. Prints, per iteration, the time from A's 204 to B's
first 401 and how many requests B still accepted in between. Both connections are kept alive, so
no TLS handshake is timed. Used by bench/revocation.sh.
"""

import http.client
import json
import ssl
import statistics
import sys
import time

PASSWORD = "violet tractor hums at dawn"
EMAIL = "revocation@bench.example"


def connect(hostport):
    host, port = hostport.rsplit(":", 1)
    ctx = ssl._create_unverified_context()  # the development certificate is self-signed
    return http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)


def call(conn, method, path, body=None, token=None):
    headers = {}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, "/auth/v1" + path, body=body, headers=headers)
    res = conn.getresponse()
    data = res.read()
    return res.status, data


def percentile(sorted_values, p):
    # Nearest rank.
    k = max(0, min(len(sorted_values) - 1, -(-p * len(sorted_values) // 100) - 1))
    return sorted_values[int(k)]


def main():
    a, b = connect(sys.argv[1]), connect(sys.argv[2])
    iterations = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    creds = {"email": EMAIL, "password": PASSWORD}
    status, body = call(a, "POST", "/signup", creds)
    if status != 200:
        sys.exit(f"sign-up on A answered {status}: {body[:300]!r}")

    elapsed_ms, accepted_after, polls = [], [], []
    for i in range(iterations):
        status, body = call(a, "POST", "/token?grant_type=password", creds)
        if status != 200:
            sys.exit(f"iteration {i}: sign-in on A answered {status}: {body[:300]!r}")
        access = json.loads(body)["access_token"]
        status, body = call(b, "GET", "/user", token=access)
        if status != 200:
            sys.exit(f"iteration {i}: B refused A's fresh token with {status}: {body[:300]!r}")
        status, body = call(a, "POST", "/logout?scope=global", token=access)
        if status != 204:
            sys.exit(f"iteration {i}: logout on A answered {status}: {body[:300]!r}")
        t0 = time.perf_counter_ns()
        n, still_ok = 0, 0
        while True:
            status, body = call(b, "GET", "/user", token=access)
            n += 1
            if status == 401:
                break
            if status == 200:
                still_ok += 1
            else:
                sys.exit(f"iteration {i}: B answered {status}: {body[:300]!r}")
            if time.perf_counter_ns() - t0 > 10_000_000_000:
                sys.exit(f"iteration {i}: B still accepts the token 10 s after logout")
        elapsed_ms.append((time.perf_counter_ns() - t0) / 1e6)
        accepted_after.append(still_ok)
        polls.append(n)

    v = sorted(elapsed_ms)
    print(f"iterations: {iterations}")
    print(f"requests B accepted after A's logout: {sum(accepted_after)} in total")
    print(f"polls until 401: max {max(polls)}")
    print(
        "logout on A -> 401 on B: "
        f"min {v[0]:.2f} ms, median {statistics.median(v):.2f} ms, "
        f"p90 {percentile(v, 90):.2f} ms, p99 {percentile(v, 99):.2f} ms, max {v[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
