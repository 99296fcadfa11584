"""Turns the JSON lines of bench/compare.sh into one table.

Each scenario gets the figures that matter for it: the broker's CPU share
and p99 latency at a fixed offered load ("@ RATE" in the name); msg/s and
delivered messages per broker CPU-second for throughput, with the broker's
RSS for rumqttc's saturating clients; p50/p99 latency for the paced pairs;
broker RSS per connection for the connection scenarios. The
last column is Strata's figure over the best peer's (higher is better for
throughput, lower for latency and memory: the ratio is written so that
above 1.00 means Strata is better). A scenario run more than once (the
paced pairs, whose p99 one 10 s run on a shared host leaves to a few
wake-ups of an idle vCPU) reports the median of each figure over its runs,
and the lost/duplicate/out-of-order counts summed; its "rounds" column
says in how many of the rounds, taken in the order they ran (the script
alternates brokers), Strata's figure was better than that best peer's.
"""

import json
import statistics
import sys
from collections import OrderedDict

def main(path, brokers):
    """`brokers`: the first is Strata (or a Strata variant), the rest peers."""
    runs = OrderedDict()
    for line in open(path):
        r = json.loads(line)
        res = r["result"]
        if res and res.get("broker_cpu_s") is not None and res.get("seconds"):
            # The broker's share of one core over the run.
            res["cpu_pct"] = 100.0 * res["broker_cpu_s"] / res["seconds"]
            if res.get("broker_sys_s") is not None:
                # Of it, outside the kernel: the broker's own code.
                res["user_pct"] = 100.0 * (res["broker_cpu_s"] - res["broker_sys_s"]) / res["seconds"]
        if res and res.get("scenario") == "Connect" and res.get("broker_cpu_s") is not None and res.get("delivered"):
            # A connection's handshakes, CONNECT and close, on the broker.
            res["cpu_us_per_conn"] = 1e6 * res["broker_cpu_s"] / res["delivered"]
        if res and res.get("broker_rss") is not None:
            res["rss_mib"] = res["broker_rss"] / 1048576.0
        runs.setdefault(r["name"], {}).setdefault(r["broker"], []).append(r["result"])

    def combine(results):
        """The median of every figure over the runs that produced one."""
        ok = [x for x in results if x]
        if not ok:
            return None
        out = {}
        for key in ok[0]:
            vals = [x[key] for x in ok if isinstance(x.get(key), (int, float))]
            if key in ("lost", "duplicates", "out_of_order"):
                out[key] = sum(vals)
            elif vals:
                out[key] = statistics.median(vals)
            else:
                out[key] = ok[0][key]
        out["runs"] = len(ok)
        return out

    rows = OrderedDict(
        (name, {b: combine(rs) for b, rs in by.items()}) for name, by in runs.items()
    )

    def rounds(name, key, higher, strata, peer):
        """Strata better than `peer` in k of n rounds of a latency, or "-"
        (one round, or a paced row's msg/s, which the schedule sets)."""
        if not key.endswith("_us"):
            return "-"
        a = [x.get(key) for x in runs[name].get(strata, []) if x]
        b = [x.get(key) for x in runs[name].get(peer, []) if x]
        pairs = [(x, y) for x, y in zip(a, b) if isinstance(x, (int, float)) and isinstance(y, (int, float))]
        if len(pairs) < 2:
            return "-"
        better = sum(1 for x, y in pairs if (x > y if higher else x < y))
        return f"{better} of {len(pairs)}"

    def metrics(name, res):
        if "idle" in name or "subscriptions" in name:
            return [("bytes/conn", "rss_per_connection", False)]
        if "pair" in name:
            # To the subscriber's socket (the kernel's receive stamp), and
            # to the generator's read of it (which adds the generator's own
            # wake-up, on the core it shares with every client).
            return [("p50 us", "p50_us", False), ("p99 us", "p99_us", False),
                    ("p99 us, read", "read_p99_us", False),
                    ("msg/s", "msg_per_s", True)]
        if "handshakes" in name:
            return [("cpu us/conn", "cpu_us_per_conn", False), ("cpu %", "cpu_pct", False),
                    ("p99 us", "p99_us", False), ("conn/s", "msg_per_s", True)]
        if " @ " in name and name.startswith(("tls ", "tcp ", "ws ")):
            # The transports' rows: messages per broker CPU-second too.
            return [("msg/cpu-s", "msg_per_cpu_s", True), ("cpu %", "cpu_pct", False),
                    ("p99 us", "p99_us", False), ("msg/s", "msg_per_s", True)]
        if " @ " in name:
            # A fixed offered load: what it costs the broker, and how late
            # its messages are.
            return [("cpu %", "cpu_pct", False), ("user cpu %", "user_pct", False),
                    ("p99 us", "p99_us", False),
                    ("msg/s", "msg_per_s", True)]
        if "rumqttc" in name:
            return [("msg/s", "msg_per_s", True), ("msg/cpu-s", "msg_per_cpu_s", True),
                    ("rss MiB", "rss_mib", False)]
        return [("msg/s", "msg_per_s", True), ("msg/cpu-s", "msg_per_cpu_s", True)]

    header = ["scenario", "metric"] + brokers + ["strata vs best peer", "rounds", "lost/dup/ooo (strata)"]
    PEERS = [b for b in brokers if not b.startswith("strata")]
    out = [header]
    for name, by in rows.items():
        for label, key, higher in metrics(name, by):
            vals = {}
            for b in brokers:
                res = by.get(b)
                vals[b] = None if not res or res.get(key) is None else float(res[key])
            cells = []
            for b in brokers:
                v = vals[b]
                cells.append("failed" if v is None else f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}")
            peers = [vals[b] for b in PEERS if vals[b] is not None]
            s = vals[brokers[0]]
            won = "-"
            if s is None or not peers:
                ratio = "n/a"
            else:
                best = max(peers) if higher else min(peers)
                if higher:
                    ratio = f"{s / best:.2f}x" if best else "n/a"
                else:
                    ratio = f"{best / s:.2f}x" if s else "n/a"
                peer = next(b for b in PEERS if vals[b] == best)
                won = rounds(name, key, higher, brokers[0], peer)
            st = by.get(brokers[0]) or {}
            integrity = (f"{st.get('lost', '-')}/{st.get('duplicates', '-')}/{st.get('out_of_order', '-')}"
                         if st else "-")
            out.append([name, label] + cells + [ratio, won, integrity])
    widths = [max(len(str(r[i])) for r in out) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in out[1:]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["strata", "mosquitto", "rumqttd"])
