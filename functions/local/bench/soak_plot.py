#!/usr/bin/env python3
"""Plots a soak run's samples (soak.csv from bench/soak.sh) as one PNG: RSS, open fds, WAL
size, outbox depth, accepted requests/s and p99 ingest latency over time, the end of the load
marked. Needs matplotlib (.venv/bin/pip install matplotlib).

usage: .venv/bin/python functions/local/bench/soak_plot.py soak.csv soak.png [title]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [
    ("rss_kib", "RSS (MiB)", lambda v: v / 1024),
    ("fds", "open fds", lambda v: v),
    ("wal_bytes", "WAL file (MiB)", lambda v: v / 1048576),
    ("outbox_live", "outbox depth (live rows)", lambda v: v),
    ("accepted_per_s", "accepted requests/s", lambda v: v),
    ("p99_ms", "p99 ingest latency (ms)", lambda v: v),
]


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    series = {}
    for name, _, scale in PANELS:
        series[name] = [scale(float(r[name])) if r[name] else float("nan") for r in rows]
    minutes = [float(r["t_s"]) / 60 for r in rows]
    load_end = max((m for m, r in zip(minutes, rows) if r["phase"] == "load"), default=None)
    return minutes, series, load_end


def main():
    source, target = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "webhooks-local soak"
    minutes, series, load_end = read(source)
    fig, axes = plt.subplots(3, 2, figsize=(12, 9), sharex=True)
    for ax, (name, label, _) in zip(axes.flat, PANELS):
        ax.plot(minutes, series[name], linewidth=1.2)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if load_end is not None:
            ax.axvline(load_end, color="grey", linestyle="--", linewidth=0.8)
    for ax in axes[-1]:
        ax.set_xlabel("minutes (dashed: load stops, the outbox drains)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    print(f"soak: plot in {target}")


if __name__ == "__main__":
    main()
