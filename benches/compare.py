#!/usr/bin/env python3
"""Ratio table of the equal-work benchmarks: splitguard (benches/equal_work.rs)
against its PyTorch twin (benches/pytorch/bench.py).

Usage: compare.py RUST.json TORCH.json [--load "1.23 0.80 0.41"]

Both files have the shape
  {"framework": ..., "threads": ..., "workloads": {name: {"median_ms", "min_ms",
   "max_ms", "steps", "params"}}}
Prints a Markdown table (ratio = splitguard median / PyTorch median; above 1
means splitguard is slower) and the load average the runs started under
(`--load`, else the current /proc/loadavg). Python 3 standard library only.
"""
import argparse
import json
import math
import sys

ORDER = [
    "cnn6_train_step",
    "cnn6_infer_batch",
    "decoder_step_split1",
    "decoder_step_split2",
    "dci_inverse_step",
    "attribute_step",
    "audit_decoder_split1",
]


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"compare.py: cannot read {path}: {e}")
    if not isinstance(doc.get("workloads"), dict):
        sys.exit(f"compare.py: {path} has no \"workloads\" object")
    return doc


def ms(x):
    return "—" if x is None else f"{x:.2f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Markdown ratio table of two equal-work JSON files.")
    ap.add_argument("rust", help="splitguard results (JSON)")
    ap.add_argument("torch", help="PyTorch results (JSON)")
    ap.add_argument("--load", default=None,
                    help="load average to report (default: the current /proc/loadavg)")
    a = ap.parse_args(argv)

    rust, torch = load(a.rust), load(a.torch)
    rw, tw = rust["workloads"], torch["workloads"]
    names = [n for n in ORDER if n in rw or n in tw]
    names += sorted(n for n in set(rw) | set(tw) if n not in ORDER)

    print("| workload | splitguard median ms | PyTorch median ms | ratio (splitguard/PyTorch) "
          "| params (splitguard / PyTorch) |")
    print("| --- | ---: | ---: | ---: | --- |")
    ratios, mismatches = [], []
    for n in names:
        r, t = rw.get(n, {}), tw.get(n, {})
        rm, tm = r.get("median_ms"), t.get("median_ms")
        ratio = "—"
        if rm is not None and tm:
            ratio = f"{rm / tm:.2f}x"
            ratios.append(rm / tm)
        rp, tp = r.get("params"), t.get("params")
        params = f"{'—' if rp is None else rp} / {'—' if tp is None else tp}"
        if rp is not None and tp is not None and rp != tp:
            params += " **MISMATCH**"
            mismatches.append(n)
        print(f"| {n} | {ms(rm)} | {ms(tm)} | {ratio} | {params} |")

    print()
    if ratios:
        geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        print(f"Geometric mean ratio over {len(ratios)} workloads: {geo:.2f}x")
    if a.load is not None:
        load_avg = a.load
    else:
        try:
            with open("/proc/loadavg") as f:
                load_avg = " ".join(f.read().split()[:3]) + " (at table time)"
        except OSError:
            load_avg = "unknown"
    print(f"Load average (1/5/15 min): {load_avg}")
    version = f", torch {torch['torch']}" if torch.get("torch") else ""
    print(f"Threads: splitguard {rust.get('threads', '?')}, PyTorch {torch.get('threads', '?')}"
          f"{version}")
    if mismatches:
        print(f"Parameter counts differ for: {', '.join(mismatches)} (not the same network)")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
