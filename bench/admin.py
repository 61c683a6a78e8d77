#!/usr/bin/env python3
"""Admin API at scale: seeds 10,000 organizations, one organization (`big`) with 1,000,000 users and
10,000,000 audit events through a bulk SQL path (bench/seed-{sqlite,postgres}.sql), then measures p50/p99
latency of the admin API reads a console makes, sign-in and token latency before and after seeding, the
server's resident memory and the database size. Run by bench/admin.sh (which builds the release binary).

Requests are sequential on one keep-alive connection, so a figure is the server's latency for one caller,
not throughput. The operator's organization listing goes through a real staff session (signed in through the
hosted pages with a TOTP second factor); everything else uses an API key with every scope.
"""
import argparse, base64, hashlib, hmac, html, http.client, json, os, re, shutil, signal, sqlite3
import statistics, struct, subprocess, sys, tempfile, time, urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "bench password 4242"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Client:
    """One keep-alive HTTP connection with a cookie jar (enough for the hosted pages' forms)."""

    def __init__(self, port):
        self.port, self.cookies = port, {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = f"http://127.0.0.1:{self.port}"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                k, _, v = pair.partition("=")
                if v:
                    self.cookies[k] = v
                else:
                    self.cookies.pop(k, None)
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data

    def timed(self, method, path, body=None, headers=None, expect=200):
        start = time.perf_counter()
        status, _, data = self.request(method, path, body, headers)
        elapsed = (time.perf_counter() - start) * 1000
        if status != expect:
            raise SystemExit(f"{method} {path}: {status} (expected {expect}): {data[:300]!r}")
        return elapsed, data


def hidden_fields(page, action):
    """The hidden inputs of the form posting to `action`."""
    text = page.decode()
    m = re.search(r'<form[^>]*action="' + re.escape(action) + r'"[^>]*>(.*?)</form>', text, re.S)
    if not m:
        raise SystemExit(f"no form posting to {action} in:\n{text[:2000]}")
    fields = {}
    for tag in re.findall(r"<input[^>]*>", m.group(1)):
        if 'type="hidden"' in tag:
            name = re.search(r'name="([^"]*)"', tag).group(1)
            value = re.search(r'value="([^"]*)"', tag)
            fields[name] = html.unescape(value.group(1)) if value else ""
    return fields


def totp(secret_b32, at=None):
    """RFC 6238 code (SHA-1, 6 digits, 30 s) computed by the benchmark's own client, as an authenticator app."""
    key = base64.b32decode(secret_b32.replace(" ", "").upper() + "=" * (-len(secret_b32.replace(" ", "")) % 8))
    counter = int((at or time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def percentiles(samples):
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(round(q * (len(s) - 1))))]
    return {"p50": round(statistics.median(s), 2), "p99": round(pick(0.99), 2), "n": len(s)}


class Bench:
    def __init__(self, args, backend):
        self.args, self.backend = args, backend
        self.work = tempfile.mkdtemp(prefix=f"latchkey-bench-{backend}-")
        self.port = args.port
        self.env = dict(os.environ, LATCHKEY_DATA_DIR=f"{self.work}/data",
                        LATCHKEY_LISTEN=f"127.0.0.1:{self.port}", LATCHKEY_LOG_LEVEL="warn",
                        LATCHKEY_PUBLIC_URL=f"http://127.0.0.1:{self.port}")
        if backend == "postgres":
            base = args.postgres_url.rsplit("/", 1)[0]
            self.psql(f"{base}/postgres", "DROP DATABASE IF EXISTS latchkey_bench WITH (FORCE)")
            self.psql(f"{base}/postgres", "CREATE DATABASE latchkey_bench")
            self.db_url = f"{base}/latchkey_bench"
            self.env["LATCHKEY_DATABASE_URL"] = self.db_url
        self.server = None

    def psql(self, url, sql):
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                       stdout=subprocess.DEVNULL)

    def cli(self, *argv, stdin=None):
        out = subprocess.run([self.args.bin, *argv], env=self.env, input=stdin, capture_output=True,
                             text=True)
        if out.returncode:
            raise SystemExit(f"latchkey {' '.join(argv)}: {out.stderr}")
        return out.stdout

    def start(self):
        self.server_log = open(f"{self.work}/server-{time.time_ns()}.log", "w")
        self.server = subprocess.Popen([self.args.bin, "serve"], env=self.env, stdout=self.server_log,
                                       stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            if self.server.poll() is not None:
                raise SystemExit(f"the server exited: {open(self.server_log.name).read()[-2000:]}")
            time.sleep(0.1)
        raise SystemExit("the server did not become ready")

    def stop(self):
        if self.server:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(timeout=60)
            self.server = None

    def memory_kb(self):
        status = open(f"/proc/{self.server.pid}/status").read()
        get = lambda k: int(re.search(rf"{k}:\s+(\d+)", status).group(1))
        return {"rss_mb": round(get("VmRSS") / 1024, 1), "peak_rss_mb": round(get("VmHWM") / 1024, 1)}

    def setup(self):
        self.cli("org", "create", "--slug", "big", "--name", "Big")
        # The benchmark signs the same user in hundreds of times from one address.
        self.cli("org", "update", "--slug", "big", "--login-attempts", "1000",
                 "--login-attempts-per-account-per-hour", "100000",
                 "--token-requests-per-client-per-minute", "100000000")
        self.cli("user", "create", "--org", "big", "--email", "signer@bench.example", "--password-stdin",
                 "--verified", stdin=PASSWORD + "\n")
        app = json.loads(self.cli("app", "create", "--org", "big", "--name", "bench", "--type",
                                  "confidential", "--grant", "client_credentials", "--json"))
        self.basic = base64.b64encode(f"{app['client_id']}:{app['client_secret']}".encode()).decode()
        key = json.loads(self.cli("api-key", "create", "--org", "big", "--name", "bench", "--scope", "all",
                                  "--json"))
        self.api = {"Authorization": f"Bearer {key['secret']}"}
        link = self.cli("staff", "create", "--email", "operator@bench.example", "--operator")
        self.setup_link = re.search(r"https?://\S+", link).group(0)

    def operator_session(self):
        """Finish the operator's setup and sign in with a TOTP second factor, as a browser would."""
        c = Client(self.port)
        path = urllib.parse.urlsplit(self.setup_link)
        setup_path = path.path + "?" + path.query
        _, _, page = c.request("GET", setup_path)
        fields = hidden_fields(page, "/setup")
        fields.update(email="operator@bench.example", name="Operator", password=PASSWORD)
        status, _, page = c.request("POST", "/setup", fields)
        assert status == 200, (status, page[:500])
        login = re.search(r'href="(?:https?://[^/"]+)?(/o/[^/"]+/login[^"]*)"', page.decode()).group(1)
        login = html.unescape(login)
        staff_slug = login.split("/")[2]
        _, _, page = c.request("GET", login)
        action = f"/o/{staff_slug}/login"
        fields = hidden_fields(page, action)
        fields.update(email="operator@bench.example", password=PASSWORD)
        status, headers, _ = c.request("POST", action, fields)
        assert status == 303, status
        _, _, page = c.request("GET", urllib.parse.urlsplit(headers["location"]).path)
        secret = re.search(r'<code class="secret">([^<]+)</code>', page.decode()).group(1)
        action = f"/o/{staff_slug}/login/mfa/enrol"
        fields = hidden_fields(page, action)
        fields["code"] = totp(secret)
        status, _, page = c.request("POST", action, fields)
        assert status in (200, 303), (status, page[:500])
        c.request("GET", "/api/v1/me")
        return c

    def sign_in_and_token(self, rounds):
        c = Client(self.port)
        sign_in, token = [], []
        for _ in range(rounds):
            c.cookies.clear()
            _, _, page = c.request("GET", "/o/big/login")
            fields = hidden_fields(page, "/o/big/login")
            fields.update(email="signer@bench.example", password=PASSWORD)
            ms, _ = c.timed("POST", "/o/big/login", fields, expect=303)
            sign_in.append(ms)
        headers = {"Authorization": f"Basic {self.basic}",
                   "Content-Type": "application/x-www-form-urlencoded"}
        for _ in range(rounds * 10):
            ms, _ = c.timed("POST", "/o/big/token", "grant_type=client_credentials", headers)
            token.append(ms)
        return {"sign_in": percentiles(sign_in), "token": percentiles(token)}

    def seed(self):
        org_id = self.query("SELECT id FROM organizations WHERE slug = 'big'")
        seq0 = self.query(f"SELECT seq FROM audit_heads WHERE org_id = '{org_id}'")
        a = self.args
        sql = open(f"{ROOT}/bench/seed-{self.backend}.sql").read()
        for k, v in {"@ORGS@": a.orgs, "@USERS@": a.users, "@EVENTS@": a.events, "@ORG@": org_id,
                     "@SEQ0@": seq0, "@NOW@": int(time.time())}.items():
            sql = sql.replace(k, str(v))
        start = time.time()
        if self.backend == "sqlite":
            db = sqlite3.connect(f"{self.work}/data/latchkey.db")
            db.executescript(sql)
            db.close()
        else:
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", self.db_url], input=sql, text=True,
                           check=True, stdout=subprocess.DEVNULL)
            self.psql(self.db_url, "CHECKPOINT")
        # The bulk load leaves gigabytes of dirty pages; the first fsync after it (the server's first
        # write) would wait for all of them. Flush now, so the figures are the steady state.
        os.sync()
        return round(time.time() - start, 1)

    def query(self, sql):
        if self.backend == "sqlite":
            db = sqlite3.connect(f"{self.work}/data/latchkey.db")
            (value,) = db.execute(sql).fetchone()
            db.close()
            return value
        return subprocess.run(["psql", "-tAq", self.db_url, "-c", sql], capture_output=True, text=True,
                              check=True).stdout.strip()

    def db_size_mb(self):
        if self.backend == "sqlite":
            size = sum(os.path.getsize(f"{self.work}/data/{f}") for f in os.listdir(f"{self.work}/data")
                       if f.startswith("latchkey.db"))
        else:
            size = int(self.query("SELECT pg_database_size(current_database())"))
        return round(size / 1024 / 1024)

    def reads(self, operator):
        c, n, api = Client(self.port), self.args.samples, self.api

        def measure(path, client=c, headers=api):
            client.timed("GET", path, headers=headers)  # warm
            return percentiles([client.timed("GET", path, headers=headers)[0] for _ in range(n)])

        out = {}
        base = "/api/v1/orgs/big"
        out["list users (first page of 100)"] = measure(f"{base}/users?limit=100")
        # A deep page: follow cursors 5,000 pages in (user 500,000 of 1,000,000) and measure that page.
        _, body = c.timed("GET", f"{base}/users?limit=100", headers=api)
        cursor = json.loads(body)["next_cursor"]
        deep_pages = min(self.args.deep_pages, self.args.users // 100 - 1)
        for _ in range(deep_pages):
            _, body = c.timed("GET", f"{base}/users?limit=100&cursor={urllib.parse.quote(cursor)}",
                              headers=api)
            cursor = json.loads(body)["next_cursor"]
        out[f"list users (page {deep_pages + 1}, by cursor)"] = measure(
            f"{base}/users?limit=100&cursor={urllib.parse.quote(cursor)}")
        out["search users by email prefix"] = measure(f"{base}/users?limit=100&email_prefix=user05")
        user_id = "usr_%032x" % (self.args.users // 2)
        out["get one user"] = measure(f"{base}/users/{user_id}")
        out["audit events, filter by action"] = measure(f"{base}/audit-events?limit=100&action=password.changed")
        out["audit events, filter by actor"] = measure(
            f"{base}/audit-events?limit=100&actor={'usr_%032x' % 2000007}")
        out["audit events, filter by user"] = measure(f"{base}/audit-events?limit=100&user={user_id}")
        now = int(time.time())
        out["audit events, time range"] = measure(
            f"{base}/audit-events?limit=100&since={now - 200 * 86400}&until={now - 199 * 86400}")
        out["list organizations (operator, first page)"] = measure("/api/v1/orgs?limit=100", operator, {})
        _, body = operator.timed("GET", "/api/v1/orgs?limit=100")
        cursor = json.loads(body)["next_cursor"]
        org_pages = max(0, min(50, self.args.orgs // 100 - 1))
        for _ in range(org_pages):
            _, body = operator.timed("GET", f"/api/v1/orgs?limit=100&cursor={urllib.parse.quote(cursor)}")
            cursor = json.loads(body)["next_cursor"]
        out[f"list organizations (operator, page {org_pages + 2})"] = measure(
            f"/api/v1/orgs?limit=100&cursor={urllib.parse.quote(cursor)}", operator, {})
        return out

    def run(self):
        result = {"backend": self.backend}
        try:
            self.setup()
            self.start()
            result["empty"] = self.sign_in_and_token(self.args.sign_ins)
            result["empty"]["memory"] = self.memory_kb()
            self.stop()
            log(f"[{self.backend}] seeding {self.args.orgs} organizations, {self.args.users} users, "
                f"{self.args.events} audit events")
            result["seed_seconds"] = self.seed()
            result["db_size_mb"] = self.db_size_mb()
            log(f"[{self.backend}] seeded in {result['seed_seconds']} s, database {result['db_size_mb']} MB")
            self.start()
            operator = self.operator_session()
            result["reads"] = self.reads(operator)
            result["seeded"] = self.sign_in_and_token(self.args.sign_ins)
            result["seeded"]["memory"] = self.memory_kb()
        finally:
            self.stop()
            if not self.args.keep:
                shutil.rmtree(self.work, ignore_errors=True)
            if self.backend == "postgres" and not self.args.keep:
                base = self.args.postgres_url.rsplit("/", 1)[0]
                self.psql(f"{base}/postgres", "DROP DATABASE IF EXISTS latchkey_bench WITH (FORCE)")
        return result


def report(r):
    print(f"\n== {r['backend']}: {r['seed_seconds']} s to seed, database {r['db_size_mb']} MB")
    print(f"{'operation':48} {'p50 ms':>8} {'p99 ms':>8}")
    for name, p in r["reads"].items():
        print(f"{name:48} {p['p50']:8.2f} {p['p99']:8.2f}")
    for what in ("sign_in", "token"):
        e, s = r["empty"][what], r["seeded"][what]
        change = (s["p50"] - e["p50"]) / e["p50"] * 100
        print(f"{what + ' p50 (empty -> seeded)':48} {e['p50']:8.2f} {s['p50']:8.2f}  ({change:+.0f}%)")
    print(f"{'RSS MB empty / seeded / seeded peak':48} {r['empty']['memory']['rss_mb']:8} "
          f"{r['seeded']['memory']['rss_mb']:8} {r['seeded']['memory']['peak_rss_mb']:8}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--bin", default=f"{ROOT}/target/release/latchkey")
    p.add_argument("--orgs", type=int, default=10_000)
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--sign-ins", type=int, default=30)
    p.add_argument("--deep-pages", type=int, default=5_000)
    p.add_argument("--port", type=int, default=18201)
    p.add_argument("--postgres-url", default=os.environ.get("LATCHKEY_TEST_POSTGRES_URL",
                                                            "postgres://postgres@127.0.0.1:5432/test"))
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--keep", action="store_true", help="keep the data directory and database")
    args = p.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [Bench(args, b).run() for b in backends]
    for r in results:
        report(r)
    if args.json:
        json.dump(results, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
