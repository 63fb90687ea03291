#!/usr/bin/env python3
"""Redis command counts and the summary table for bench/cluster.sh.

    redis_stats.py sample PORT OUT     poll INFO commandstats every 20 ms into OUT (JSON lines)
                                       until SIGTERM (then one last sample)
    redis_stats.py enrich ...          add Redis command counts and CPU per delivery to one
                                       bayeux-bench result line, append it to the results file
    redis_stats.py report RESULTS      print the table (medians over rounds)

Only the standard library: the sampler speaks RESP itself. Its own INFO calls are
subtracted exactly (sample j has seen j - i of them since sample i; INFO does not count
itself in its own reply), so the counts are the cluster's commands alone. Commands run
inside Lua scripts are counted by Redis like any other (and so is the EVALSHA).
"""
import json
import re
import signal
import socket
import statistics
import sys
import time

INTERVAL_S = 0.02


class Resp:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def command(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        head = self._line()
        kind, rest = head[:1], head[1:]
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("redis closed the connection")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest.decode()


def parse_commandstats(text):
    calls = {}
    for line in text.splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, fields = line[len("cmdstat_"):].split(":", 1)
        for f in fields.split(","):
            k, _, v = f.partition("=")
            if k == "calls":
                calls[name] = int(v)
    return calls


def sample(port, out_path):
    r = Resp(port)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with open(out_path, "w") as out:
        i = 0
        while True:
            last = bool(stop)
            calls = parse_commandstats(r.command("INFO", "commandstats"))
            out.write(json.dumps({"t": time.time(), "i": i, "calls": calls}) + "\n")
            out.flush()
            i += 1
            if last:
                return
            time.sleep(INTERVAL_S)


def load_samples(path):
    rows = []
    for line in open(path):
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass  # a line cut short by the sampler's exit
    return rows


def delta(a, b):
    """Commands between samples a and b, without the sampler's own INFO calls."""
    d = {}
    for k, v in b["calls"].items():
        n = v - a["calls"].get(k, 0)
        if k == "info":
            n -= b["i"] - a["i"]
        if n > 0:
            d[k] = n
    return d


def summary(d, publishes, top=6):
    total = sum(d.values())
    per = (lambda n: round(n / publishes, 2)) if publishes else (lambda n: None)
    return {
        "total": total,
        "per_publish": per(total),
        "top": [[k, v, per(v)] for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]],
        "commands": d,
    }


# The command each system runs exactly once per publish, whatever the number of
# subscribers: hero's engine appends a publish to its shared log with one XADD (its Lua
# scripts also XADD subscription changes, claims and destroys, which the steady window
# does not see), faye-redis looks the subscribers up with one SUNION.
PUBLISH_MARKER = {"hero": "xadd", "faye-redis": "sunion"}


def steady(samples, row, lo=0.2, hi=0.9):
    """Commands per publish in the middle of the publishing (from lo to hi of the time
    from the first publish to the last), where no client setup or disconnect is left: the
    cost of a publish alone. The publishes in that stretch are counted by the system's
    PUBLISH_MARKER command; by its share of the publishing time if there is none."""
    published = row.get("published") or 0
    if row.get("scenario") == "fanout":
        span = published / row["publishes_per_s"] if row.get("publishes_per_s") else 0
    else:
        span = (row.get("params") or {}).get("duration_s") or 0
    if span <= 0 or not published or len(samples) < 2:
        return None
    start = row["t0"] + (row.get("setup_s") or 0)
    a, b = start + lo * span, start + hi * span
    before = max((x for x in samples if x["t"] <= a), key=lambda x: x["t"], default=samples[0])
    after = min((x for x in samples if x["t"] >= b), key=lambda x: x["t"], default=samples[-1])
    window = after["t"] - before["t"]
    if window <= 0:
        return None
    d = delta(before, after)
    by_time = published * min(1.0, window / span)
    marker = PUBLISH_MARKER.get(row.get("system"))
    publishes = d.get(marker) or by_time
    out = summary(d, publishes)
    out.update({"window_s": round(window, 3), "publishes": publishes,
                "counted_by": marker if d.get(marker) else "time share",
                "publishes_by_time_share": round(by_time, 1)})
    return out


def enrich(args):
    """enrich BENCH_LINE SAMPLES T0 CASE SYSTEM ROUND RESULTS NODE_LOG..."""
    bench_line, samples_path, t0, case, system, rnd, results = args[:7]
    node_logs = args[7:]
    try:
        row = json.loads(open(bench_line).read().strip().splitlines()[-1])
    except (IndexError, ValueError, OSError):
        row = {"ok": False, "problems": ["bayeux-bench produced no result (timed out or crashed)"]}
    row.update({"case": case, "system": system, "round": int(rnd), "t0": float(t0)})
    row["node_errors"] = []
    for path in node_logs:
        try:
            for line in open(path, errors="replace"):
                if re.search(r"error|panic|warn", line, re.I) and len(row["node_errors"]) < 50:
                    row["node_errors"].append(f"{path.rsplit('/', 1)[-1]}: {line.rstrip()}")
        except OSError:
            pass
    samples = load_samples(samples_path)
    publishes = row.get("published") or 0
    if len(samples) >= 2:
        # From just before bayeux-bench started to just after it exited.
        run = summary(delta(samples[0], samples[-1]), publishes)
        st = steady(samples, row)
        row["redis_cmds"] = {"run": run, "steady": st}
    # CPU of the three nodes (server + first two aux) and Redis (last aux).
    procs = ([row["server"]] if isinstance(row.get("server"), dict) else []) + list(row.get("aux") or [])
    cpus = [p.get("cpu_s") for p in procs]
    delivered = row.get("delivered") or 0
    if cpus and all(c is not None for c in cpus) and delivered:
        row["cpu_nodes_s"] = round(sum(cpus[:-1]), 3)
        row["cpu_redis_s"] = round(cpus[-1], 3)
        row["cpu_us_per_delivery"] = round(sum(cpus) / delivered * 1e6, 2)
        row["cpu_redis_us_per_delivery"] = round(cpus[-1] / delivered * 1e6, 2)
    row["clean"] = bool(row.get("ok")) and not row.get("reordered")
    with open(results, "a") as f:
        f.write(json.dumps(row) + "\n")
    # One line for the log.
    rc = row.get("redis_cmds") or {}
    st = rc.get("steady") or {}
    top = ", ".join(f"{k} {p}" for k, _, p in st.get("top", [])[:5])
    print(f"  {system:10} {case:18} {fmt_rate(row.get('msgs_per_s'))}/s  p50 {fmt_ms(row.get('p50_us'))}"
          f"  p99 {fmt_ms(row.get('p99_us'))}  {ok_text([row])}  cpu {row.get('cpu_us_per_delivery')} us/delivery;"
          f"  redis cmds/publish: run {(rc.get('run') or {}).get('per_publish')}, steady {st.get('per_publish')}"
          f" ({top})"
          + (f"  [{len(row['node_errors'])} node log lines with error/warn]" if row["node_errors"] else ""))


def read_rows(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except OSError:
        return []


def fmt_rate(v):
    return "-" if v is None else f"{v:,.0f}"


def fmt_ms(us):
    return "-" if us is None else (f"{us / 1000:.1f} ms" if us < 10_000_000 else f"{us / 1e6:.1f} s")


def ok_text(rows):
    bad = [r for r in rows if not r.get("clean")]
    if not bad:
        return "ok"
    parts = []
    for r in bad:
        what = []
        for k in ("lost", "duplicates", "reordered", "errors"):
            if r.get(k):
                what.append(f"{k} {r[k]:,}")
        if r.get("capped_by_time"):
            what.append(f"capped at {r.get('published'):,} publishes")
        if not what:
            what = [p[:100] for p in r.get("problems", [])[:1]] or ["incomplete"]
        parts.append(f"r{r.get('round')}: " + ", ".join(what))
    return f"NOT OK ({len(bad)}/{len(rows)}: " + "; ".join(parts) + ")"


def report(results):
    rows = read_rows(results)
    systems = ["hero", "faye-redis"]
    cases = []
    for r in rows:
        if r["case"] not in cases:
            cases.append(r["case"])

    def of(system, case):
        return [r for r in rows if r["system"] == system and r["case"] == case]

    def values(system, case, get):
        vs = []
        for r in of(system, case):
            try:
                v = get(r)
            except (KeyError, TypeError, IndexError):
                v = None
            if v is not None:
                vs.append(v)
        return vs

    def cell(system, case, get, fmt, ratio=True):
        vs = values(system, case, get)
        if not vs:
            return "-", None
        m = statistics.median(vs)
        text = fmt(m)
        if len(vs) > 1:
            text += f" [{fmt(min(vs))}–{fmt(max(vs))}]"
        return text, m

    metrics = [
        ("deliveries/s", lambda r: r["msgs_per_s"], fmt_rate),
        ("p50", lambda r: r["p50_us"], fmt_ms),
        ("p99", lambda r: r["p99_us"], fmt_ms),
        ("CPU us/delivery (3 nodes + redis)", lambda r: r["cpu_us_per_delivery"], lambda v: f"{v:.2f}"),
        ("  of which redis", lambda r: r["cpu_redis_us_per_delivery"], lambda v: f"{v:.2f}"),
        ("other processes' CPU, cores", lambda r: r["other_cpu_s"] / r["interval_s"], lambda v: f"{v:.2f}"),
        ("redis cmds/publish, whole run", lambda r: r["redis_cmds"]["run"]["per_publish"], lambda v: f"{v:,.1f}"),
        ("redis cmds/publish, steady", lambda r: r["redis_cmds"]["steady"]["per_publish"], lambda v: f"{v:,.2f}"),
    ]
    print()
    print("| scenario | metric | hero | faye-redis | hero/faye-redis |")
    print("|---|---|---|---|---|")
    for case in cases:
        for name, get, fmt in metrics:
            if case.startswith("pairs") and name == "deliveries/s":
                name = "msgs/s"
            h, hm = cell("hero", case, get, fmt)
            f, fm = cell("faye-redis", case, get, fmt)
            ratio = "-"
            if hm is not None and fm and not name.startswith("other"):
                ratio = f"{hm / fm:.2f}x" if hm / fm >= 0.1 else f"{hm / fm:.2g}x"
            print(f"| {case} | {name} | {h} | {f} | {ratio} |")
        oks = [ok_text(of(s, case)) if of(s, case) else "-" for s in systems]
        print(f"| {case} | ok (nothing lost, duplicated, reordered) | {oks[0]} | {oks[1]} | |")
        tops = []
        for s in systems:
            rs = [r for r in of(s, case) if (r.get("redis_cmds") or {}).get("steady")]
            if not rs:
                tops.append("-")
                continue
            r = sorted(rs, key=lambda r: r["redis_cmds"]["steady"]["per_publish"])[len(rs) // 2]
            tops.append(", ".join(f"{k} {p:,.2f}" for k, _, p in r["redis_cmds"]["steady"]["top"][:6] if p is not None))
        print(f"| {case} | top redis cmds/publish, steady | {tops[0]} | {tops[1]} | |")
        caps = [f"{s}: published {r.get('published'):,} of {r['params'].get('messages'):,} (capped by time)"
                for s in systems for r in of(s, case) if r.get("capped_by_time")]
        if caps:
            print(f"| {case} | CAPPED | " + "; ".join(caps) + " | | |")
    print("(median over rounds [min–max]; ratios hero/faye-redis, lower is better for latency, CPU and"
          " commands. CPU: bayeux-bench's start to the last delivery, client setup included; 'other processes':"
          " the host's busy CPU in that time minus the generator, the nodes and Redis (a shared machine). Redis commands"
          " 'whole run': from bayeux-bench's start to its exit, client handshakes, subscribes and"
          " disconnects included; 'steady': from 20% to 90% of the way from the first publish to the last"
          " (no client setup or disconnect), publishes counted by hero's XADD and faye-redis's SUNION, one per"
          " publish)")

    # Redis commands per publish against the number of subscribers.
    fan = sorted({(r["params"]["subscribers"], r["case"]) for r in rows if r.get("scenario") == "fanout"})
    if len(fan) > 1:
        print()
        print("| fan-out subscribers | hero cmds/publish (steady) | faye-redis cmds/publish (steady) | hero cmds/delivery | faye-redis cmds/delivery |")
        print("|---|---|---|---|---|")
        for n, case in fan:
            cells = []
            for div in (1, n):
                for s in systems:
                    vs = values(s, case, lambda r: r["redis_cmds"]["steady"]["per_publish"])
                    cells.append((f"{statistics.median(vs):,.2f}" if div == 1 else f"{statistics.median(vs) / div:.3g}")
                                 if vs else "-")
            print(f"| {n} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")

    errs = [(r["system"], r["case"], r["round"], r["node_errors"]) for r in rows if r.get("node_errors")]
    if errs:
        print()
        print("Node log lines matching error/panic/warn (first of each run):")
        for s, c, rnd, lines in errs:
            print(f"  {s} {c} round {rnd}: {len(lines)} lines, e.g. {lines[0][:200]}")


def main():
    cmd = sys.argv[1]
    if cmd == "sample":
        sample(int(sys.argv[2]), sys.argv[3])
    elif cmd == "enrich":
        enrich(sys.argv[2:])
    elif cmd == "report":
        report(sys.argv[2])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
