#!/usr/bin/env python3
"""Campaign delivery through a real SMTP sink: the front-door flow, the sampler and the report.

    bench/campaigns.py prepare HOST:PORT STATE --psql URL --csv FILE --query Q
    bench/campaigns.py send HOST:PORT STATE --sink KIND --sink-file FILE
    bench/campaigns.py kill STATE --at K --time UNIX
    bench/campaigns.py watch HOST:PORT STATE --sink KIND --sink-file FILE --pids SERVER,SINK
                             --target N [--stop-at K] --samples FILE
    bench/campaigns.py report STATE --sink KIND --sink-file FILE --samples FILE --target N
    bench/campaigns.py resolve HOST:PORT STATE

`prepare` signs up an admin, creates an organization, raises the session to aal2 with TOTP,
adds a sender (verified by SQL: the verification flow has its own test), imports FILE by
`POST /api/v1/imports` + `/start` (create_only), creates a template and a campaign whose audience
is `{"query": Q}`, and keeps the token and ids in the JSON file STATE. `send` starts the
campaign. `watch` samples every 0.1 s, until K deliveries (then returns, for a kill) or until
N distinct deliveries and the campaign is `sent`: the sink's delivery count (read incrementally
from aiosmtpd's index.tsv or smtp-sink's dump file), the server's VmRSS and VmHWM, and the CPU
time of the server, the sink and every PostgreSQL process; one JSON line per sample. `report`
turns the samples into rates and checks the sink's record: N distinct Message-IDs for N distinct
recipients, none missing, how many delivered twice. `resolve` sends, polls until the campaign
has a `started_at`, pauses it at once, and prints how long the audience took to resolve.
Used by bench/campaigns.sh.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import ssl
import struct
import subprocess
import sys
import time
from datetime import datetime

PASSWORD = "violet tractor hums at dawn"
TICK = os.sysconf("SC_CLK_TCK")


class Api:
    def __init__(self, hostport):
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.conn = None

    def _connect(self):
        ctx = ssl._create_unverified_context()  # the development certificate is self-signed
        self.conn = http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=120)

    def call(self, method, path, body=None, token=None, raw=None, content_type=None):
        headers = {"Accept": "application/json"}
        if body is not None:
            raw = json.dumps(body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in range(2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=raw, headers=headers)
                res = self.conn.getresponse()
                data = res.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn = None
                if attempt:
                    raise
        try:
            value = json.loads(data) if data else None
        except ValueError:
            value = data.decode(errors="replace")
        return res.status, value

    def ok(self, method, path, expect, **kw):
        status, value = self.call(method, path, **kw)
        if status != expect:
            sys.exit(f"{method} {path} answered {status}, not {expect}: {str(value)[:500]}")
        return value


def totp(secret_b32, now):
    secret = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    h = hmac.new(secret, struct.pack(">q", int(now) // 30), hashlib.sha1).digest()
    o = h[-1] & 0x0F
    return f"{(struct.unpack('>I', h[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


def admin_session(api):
    s = api.ok("POST", "/auth/v1/signup", 200,
               body={"email": "admin@campaigns.bench", "password": PASSWORD})
    token = s["access_token"]
    org = api.ok("POST", "/api/v1/orgs", 201, body={"name": "Campaign bench"}, token=token)["id"]
    f = api.ok("POST", "/auth/v1/factors", 200, body={"factor_type": "totp"}, token=token)
    ch = api.ok("POST", f"/auth/v1/factors/{f['id']}/challenge", 200, body={}, token=token)
    v = api.ok("POST", f"/auth/v1/factors/{f['id']}/verify", 200, token=token,
               body={"challenge_id": ch["id"], "code": totp(f["totp"]["secret"], time.time())})
    token = v["access_token"]
    token = api.ok("POST", "/api/v1/session/org", 200, body={"org_id": org},
                   token=token)["access_token"]
    return token, org


def prepare(a):
    api = Api(a.hostport)
    token, org = admin_session(api)
    sender = api.ok("POST", "/api/v1/campaigns/senders", 201, token=token,
                    body={"address": "news@acme.bench", "display_name": "Acme News"})["id"]
    subprocess.run(["psql", a.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    "UPDATE app.sender_identities SET verified_at = now()"], check=True)

    with open(a.csv, "rb") as f:
        data = f.read()
    t0 = time.time()
    imp = api.ok("POST", "/api/v1/imports?name=bench.csv", 201, token=token, raw=data,
                 content_type="text/csv")["id"]
    api.ok("POST", f"/api/v1/imports/{imp}/start", 202, token=token, body={"mode": "create_only"})
    while True:
        s = api.ok("GET", f"/api/v1/imports/{imp}", 200, token=token)
        if s["status"] == "done":
            break
        if s["status"] in ("failed", "cancelled"):
            sys.exit(f"import failed: {s}")
        time.sleep(0.5)
    dt = time.time() - t0
    print(f"  imported {s['rows_done']:,} rows in {dt:.1f} s ({s['rows_done'] / dt:,.0f} rows/s): "
          f"created {s['created']:,}, duplicates {s['duplicates']}, rejected {s['rejected']}")

    tpl = api.ok("POST", "/api/v1/campaigns/templates", 201, token=token, body={
        "name": "Bench", "subject": "News for {{ company_name }}",
        "html": "<p>Hello {{ first_name | default: \"there\" }},</p>"
                "<p>A short note from Acme about what is new this quarter at "
                "{{ company_name }}.</p><p>Regards,<br>Acme</p>"})["id"]
    c = api.ok("POST", "/api/v1/campaigns", 201, token=token, body={
        "name": "Bench", "template_id": tpl, "sender_id": sender,
        "audience": {"query": a.query}})["id"]
    aud = api.ok("GET", f"/api/v1/campaigns/{c}/audience", 200, token=token)
    print(f"  campaign {c}: audience {aud}")
    with open(a.state, "w") as f:
        json.dump({"token": token, "org": org, "campaign": c, "audience": aud}, f)


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, state):
    with open(path, "w") as f:
        json.dump(state, f)


def send(a):
    st = load(a.state)
    api = Api(a.hostport)
    # What the sink holds already (the sender's verification mail) is not the campaign's.
    st["baseline"] = SinkCounter(a.sink, a.sink_file).poll()
    st["sent_at"] = time.time()
    v = api.ok("POST", f"/api/v1/campaigns/{st['campaign']}/send", 200, token=st["token"], body={})
    if v.get("state") != "scheduled":
        sys.exit(f"the campaign is {v.get('state')}, not scheduled")
    save(a.state, st)


class SinkCounter:
    """Deliveries so far, reading only what the sink appended since the last look."""

    def __init__(self, kind, path):
        self.kind, self.path, self.offset, self.count, self.tail = kind, path, 0, 0, b""

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return self.count
        self.offset += len(chunk)
        if self.kind == "aiosmtpd":
            self.count += chunk.count(b"\n")
        else:  # smtp-sink -S '\001': one marker per transaction
            self.count += chunk.count(b"\x01")
        return self.count


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def postgres_ticks():
    total = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        t = cpu_ticks(p)
        total += t or 0
    return total


def memory(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


def watch(a):
    st = load(a.state)
    server, sink = (int(p) for p in a.pids.split(","))
    counter = SinkCounter(a.sink, a.sink_file)
    base = st["baseline"]
    api = Api(a.hostport)
    last_check = 0
    last_n, last_progress = -1, time.time()
    with open(a.samples, "a") as out:
        while True:
            now = time.time()
            n = counter.poll() - base
            m = memory(server)
            out.write(json.dumps({
                "t": now, "n": n, "server": server, "rss": m.get("VmRSS"), "hwm": m.get("VmHWM"),
                "cpu_server": cpu_ticks(server), "cpu_sink": cpu_ticks(sink),
                "cpu_pg": postgres_ticks()}) + "\n")
            if n != last_n:
                last_n, last_progress = n, now
            if a.stop_at and n >= a.stop_at:
                return
            if n >= a.target and now - last_check > 1:
                last_check = now
                c = api.ok("GET", f"/api/v1/campaigns/{st['campaign']}", 200, token=st["token"])
                if c["state"] == "sent":
                    st["campaign_done"] = c
                    save(a.state, st)
                    return
            if now - last_progress > a.stall:
                sys.exit(f"no delivery for {a.stall} s at {n} deliveries")
            time.sleep(0.1)


def deliveries(kind, path):
    """(Message-ID, recipient) of every accepted message, in arrival order."""
    out = []
    if kind == "aiosmtpd":
        with open(path, "rb") as f:
            for line in f:
                mid, rcpt = line.decode().split("\t")[:2]
                out.append((mid, rcpt))
        return out
    mid_re = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.I | re.M)
    rcpt_re = re.compile(rb"^X-Rcpt-Args: <([^>]*)>", re.M)
    with open(path, "rb") as f:
        data = f.read()
    for msg in data.split(b"\x01")[1:]:
        mid, rcpt = mid_re.search(msg), rcpt_re.search(msg)
        out.append((mid.group(1).decode() if mid else "-", rcpt.group(1).decode() if rcpt else "-"))
    return out


def crossing(samples, k):
    """When the sink's count first reached k (linear between two samples)."""
    prev = None
    for s in samples:
        if s["n"] >= k:
            if prev is None or s["n"] == prev["n"]:
                return s["t"]
            f = (k - prev["n"]) / (s["n"] - prev["n"])
            return prev["t"] + f * (s["t"] - prev["t"])
        prev = s
    return None


def report(a):
    st = load(a.state)
    samples = [json.loads(line) for line in open(a.samples)]
    got = [(m, r) for m, r in deliveries(a.sink, a.sink_file) if r.startswith("person")]
    n = a.target
    mids = {}
    per_rcpt = {}
    for mid, rcpt in got:
        mids[mid] = mids.get(mid, 0) + 1
        per_rcpt.setdefault(rcpt, set()).add(mid)
    twice = sum(1 for c in mids.values() if c > 1)
    extra = sum(c - 1 for c in mids.values())
    two_ids = sum(1 for s in per_rcpt.values() if len(s) > 1)
    total = len(got)
    print(f"  sink: {total:,} messages, {len(mids):,} distinct Message-IDs, "
          f"{len(per_rcpt):,} distinct recipients (expected {n:,} of each)")
    print(f"  delivered twice (same Message-ID): {twice} messages ({extra} extra copies); "
          f"recipients with two different Message-IDs: {two_ids}; "
          f"missing: {max(0, n - len(per_rcpt)):,}")

    t_first = crossing(samples, 1)
    t_last = crossing(samples, total)
    t10, t90 = crossing(samples, total * 0.1), crossing(samples, total * 0.9)
    if "kill" in st:
        k = st["kill"]
        after = next((s["t"] for s in samples if s["t"] > k["time"] and s["n"] > k["at"]), None)
        gap = f"{after - k['time']:.1f} s" if after else "never"
        print(f"  killed (-9) at {k['at']:,} deliveries; the restarted server's first delivery "
              f"came {gap} after the kill")
    print(f"  send -> first delivery at the sink: {t_first - st['sent_at']:.2f} s")
    span = t_last - t_first
    print(f"  first -> last delivery: {span:.1f} s: {total / span:,.0f} msg/s sustained")
    print(f"  middle 80 % (deliveries {total * 0.1:,.0f} to {total * 0.9:,.0f}): "
          f"{total * 0.8 / (t90 - t10):,.0f} msg/s")
    by_pid = {}
    for s in samples:
        if s["hwm"]:
            by_pid[s["server"]] = max(by_pid.get(s["server"], 0), s["hwm"])
    peaks = ", ".join(f"{v / 1024:.0f} MB" for v in by_pid.values())
    print(f"  server peak RSS (VmHWM): {peaks}" + (" (before and after the kill)" if len(by_pid) > 1 else ""))

    # CPU over the middle 80 %, in cores (1.00 = one core busy).
    w = [s for s in samples if t10 <= s["t"] <= t90 and s["cpu_server"] is not None]
    w = [s for s in w if s["server"] == w[-1]["server"]] if w else w
    if len(w) > 1:
        dt = w[-1]["t"] - w[0]["t"]
        use = {k: (w[-1][k] - w[0][k]) / TICK / dt for k in ("cpu_server", "cpu_sink", "cpu_pg")
               if w[-1][k] is not None and w[0][k] is not None}
        print("  CPU in the middle 80 % (cores of 2): " + ", ".join(
            f"{k[4:]} {v:.2f}" for k, v in use.items()))
    done = st.get("campaign_done", {})
    print(f"  campaign: {done.get('state')}, stats {json.dumps(done.get('stats'))}")
    ok = len(mids) == n and len(per_rcpt) == n and two_ids == 0
    print("  check: " + ("PASS" if ok else "FAIL") +
          f": {n:,} distinct Message-IDs for {n:,} distinct recipients")
    if not ok:
        sys.exit(1)


def resolve(a):
    st = load(a.state)
    api = Api(a.hostport)
    c = st["campaign"]
    t0 = time.time()
    api.ok("POST", f"/api/v1/campaigns/{c}/send", 200, token=st["token"], body={})
    while True:
        v = api.ok("GET", f"/api/v1/campaigns/{c}", 200, token=st["token"])
        if v["started_at"]:
            seen = time.time()
            break
        if time.time() - t0 > 600:
            sys.exit("the audience was not resolved within 600 s")
        time.sleep(0.05)
    p = api.ok("POST", f"/api/v1/campaigns/{c}/pause", 200, token=st["token"])
    started = datetime.fromisoformat(v["started_at"].replace("Z", "+00:00")).timestamp()
    print(f"  send -> started_at (server clock): {started - t0:.2f} s; "
          f"send -> the API shows it sending: {seen - t0:.2f} s")
    print(f"  recipients {v['recipients']:,}, suppressed {v['stats'].get('suppressed', 0):,}; "
          f"paused ({p['state']}) {time.time() - seen:.2f} s later")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    x = sub.add_parser("prepare")
    x.add_argument("hostport")
    x.add_argument("state")
    x.add_argument("--psql", required=True)
    x.add_argument("--csv", required=True)
    x.add_argument("--query", default="")
    x = sub.add_parser("resolve")
    x.add_argument("hostport")
    x.add_argument("state")
    x = sub.add_parser("send")
    x.add_argument("hostport")
    x.add_argument("state")
    x.add_argument("--sink", choices=["aiosmtpd", "smtp-sink"], required=True)
    x.add_argument("--sink-file", required=True)
    x = sub.add_parser("watch")
    x.add_argument("hostport")
    x.add_argument("state")
    x.add_argument("--sink", choices=["aiosmtpd", "smtp-sink"], required=True)
    x.add_argument("--sink-file", required=True)
    x.add_argument("--pids", required=True)
    x.add_argument("--target", type=int, required=True)
    x.add_argument("--stop-at", type=int)
    x.add_argument("--samples", required=True)
    x.add_argument("--stall", type=float, default=120)
    x = sub.add_parser("report")
    x.add_argument("state")
    x.add_argument("--sink", choices=["aiosmtpd", "smtp-sink"], required=True)
    x.add_argument("--sink-file", required=True)
    x.add_argument("--samples", required=True)
    x.add_argument("--target", type=int, required=True)
    x = sub.add_parser("kill")
    x.add_argument("state")
    x.add_argument("--at", type=int, required=True)
    x.add_argument("--time", type=float, required=True)
    a = p.parse_args()
    if a.cmd == "kill":
        st = load(a.state)
        st["kill"] = {"at": a.at, "time": a.time}
        save(a.state, st)
        return
    {"prepare": prepare, "send": send, "watch": watch, "report": report,
     "resolve": resolve}[a.cmd](a)


if __name__ == "__main__":
    main()
