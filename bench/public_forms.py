#!/usr/bin/env python3
"""Load client of bench/public-forms.sh: posts to LeadGen's public forms over TLS from many
loopback source addresses (127.0.0.0/8), as visitors of a website would arrive.

  public_forms.py setup HOST:PORT ORIGIN
      Signs up a member, creates an organization and a capture form allowing ORIGIN; prints the
      form's key.
  public_forms.py early-access HOST:PORT
      One address fetches the landing page's form, waits out the minimum fill time, then sends
      100 posts at once; at the same moment 100 other addresses post once each. Prints the
      statuses per group as JSON.
  public_forms.py capture HOST:PORT KEY ORIGIN [--seconds S] [--conns C] [--per-ip N] [--rate R] [--ip-base B]
      C workers post the capture form KEY with Origin ORIGIN for S seconds; each worker opens a
      TLS connection from a fresh source address, posts N submissions on it (below the per-address
      limit), and moves on. Without R each worker posts as fast as it is answered (saturation);
      with R the workers together offer R posts a second on a fixed schedule. Prints latency
      percentiles of the posts (connection set-up apart). Source addresses are 127.B+…, each
      used for N posts once.
"""
import http.client
import json
import re
import ssl
import sys
import threading
import time
import urllib.parse

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def conn(hostport, ip):
    host, port = hostport.rsplit(":", 1)
    return http.client.HTTPSConnection(host, int(port), context=CTX, source_address=(ip, 0), timeout=30)


def post(c, path, fields, origin, extra=None):
    body = urllib.parse.urlencode(fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin}
    headers.update(extra or {})
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    return r.status, data


def early_access(hostport):
    origin = f"https://{hostport}"
    c = conn(hostport, "127.0.0.2")
    c.request("GET", "/")
    page = c.getresponse().read().decode()
    stamp = re.search(r'name="lg_stamp" value="([^"]+)"', page).group(1)
    time.sleep(3.5)
    burst, others = [], []
    lock = threading.Lock()

    def one(ip, i, into):
        try:
            k = conn(hostport, ip)
            status, _ = post(k, "/early-access", {"email": f"visitor{i}.{ip}@example.com", "lg_stamp": stamp}, origin)
            k.close()
        except Exception as e:  # noqa: BLE001 - reported, never hidden
            status = f"error: {e}"
        with lock:
            into.append(status)

    threads = [threading.Thread(target=one, args=("127.0.0.2", i, burst)) for i in range(100)]
    threads += [threading.Thread(target=one, args=(f"127.0.1.{i + 1}", i, others)) for i in range(100)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    count = lambda xs: {str(s): xs.count(s) for s in sorted(set(xs), key=str)}
    print(json.dumps({"burst_from_one_address": count(burst), "one_post_each_from_100_others": count(others), "seconds": round(took, 2)}))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def capture(hostport, key, origin, seconds, conns, per_ip, fields_json, rate=0.0, ip_base=10):
    fields = json.loads(fields_json)
    lat, setup, statuses = [], [], {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    counter = [0]

    # With a rate, each connection sends on a fixed schedule (rate / conns posts a second), so
    # the latency is measured at that offered load instead of at saturation.
    gap = conns / rate if rate > 0 else 0.0

    def worker(w):
        n = 0
        due = time.monotonic() + (gap * w / conns if gap else 0.0)
        while time.monotonic() < stop:
            with lock:
                counter[0] += 1
                k = counter[0]
            # One address per k (254 hosts a /24), never reused within a run; runs start at
            # different second octets (`ip_base`) so a second run does not inherit the first's
            # per-address counts.
            a = k // 254
            ip = f"127.{ip_base + (a // 256) % 100}.{a % 256}.{k % 254 + 1}"
            t0 = time.monotonic()
            c = conn(hostport, ip)
            c.connect()
            t1 = time.monotonic()
            with lock:
                setup.append(t1 - t0)
            for _ in range(per_ip):
                if time.monotonic() >= stop:
                    break
                if gap:
                    time.sleep(max(0.0, due - time.monotonic()))
                    due += gap
                n += 1
                f = {name: v.replace("{n}", f"{ip_base}-{w}-{n}-{k}") for name, v in fields.items()}
                t0 = time.monotonic()
                try:
                    status, _ = post(c, f"/f/{key}", f, origin, {"Accept": "application/json"})
                except Exception as e:  # noqa: BLE001 - reported, never hidden
                    status = f"error: {type(e).__name__}"
                    c.close()
                    c = conn(hostport, ip)
                dt = time.monotonic() - t0
                with lock:
                    lat.append(dt)
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
            c.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    ms = lambda s: round(s * 1000, 2)
    print(json.dumps({
        "posts": len(lat), "seconds": round(took, 1), "per_second": round(len(lat) / took, 1),
        "addresses": counter[0], "statuses": statuses,
        "p50_ms": ms(pct(lat, 50)), "p95_ms": ms(pct(lat, 95)), "p99_ms": ms(pct(lat, 99)), "max_ms": ms(max(lat)),
        "tls_connect_p50_ms": ms(pct(setup, 50)), "tls_connect_p95_ms": ms(pct(setup, 95)),
    }))


def api(hostport, method, path, body=None, token=None):
    c = conn(hostport, "127.0.0.1")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = json.loads(r.read() or b"null")
    if r.status >= 300:
        sys.exit(f"{method} {path} answered {r.status}: {data}")
    return data


def setup(hostport, origin):
    """A member, an organization and a form on ORIGIN; prints the form's public key."""
    s = api(hostport, "POST", "/auth/v1/signup", {"email": "owner@forms.bench", "password": "violet tractor hums at dawn"})
    token = s["access_token"]
    org = api(hostport, "POST", "/api/v1/orgs", {"name": "Forms bench"}, token)["id"]
    token = api(hostport, "POST", "/api/v1/session/org", {"org_id": org}, token)["access_token"]
    form = api(hostport, "POST", "/api/v1/forms", {
        "name": "Bench", "allowed_origins": [origin], "max_per_hour": 100000,
        "fields": [{"name": "email"}, {"name": "first_name"}, {"name": "company_name"}],
        "consent_text": "I agree to be contacted.", "consent_version": "v1",
    }, token)
    print(form["public_key"])


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "setup":
        setup(sys.argv[2], sys.argv[3])
    elif mode == "early-access":
        early_access(sys.argv[2])
    elif mode == "capture":
        args = sys.argv[2:]
        opts = {"--seconds": "20", "--conns": "8", "--per-ip": "5", "--rate": "0", "--ip-base": "10", "--fields": '{"email": "lead{n}@example.com"}'}
        pos = []
        i = 0
        while i < len(args):
            if args[i] in opts:
                opts[args[i]] = args[i + 1]
                i += 2
            else:
                pos.append(args[i])
                i += 1
        capture(pos[0], pos[1], pos[2], float(opts["--seconds"]), int(opts["--conns"]), int(opts["--per-ip"]), opts["--fields"], float(opts["--rate"]), int(opts["--ip-base"]))
    else:
        sys.exit(__doc__)
