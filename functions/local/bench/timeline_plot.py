#!/usr/bin/env python3
"""Plots latency over time from `loadgen --series` CSVs (bench/timeline.sh): per 100 ms, the
max and p99 latency, and the WAL in use (frames x 4120 bytes) with its file size. Several
CSVs (e.g. before and after) become stacked panels sharing the time and latency axes.

usage: .venv/bin/python functions/local/bench/timeline_plot.py out.png LABEL=series.csv ...
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FRAME_BYTES = 4096 + 24


def read(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["requests"] != "0"]
    col = lambda name, scale=1.0: [float(r[name] or 0) * scale for r in rows]  # noqa: E731
    return {
        "t": col("t_s"),
        "max": col("max_ms"),
        "p99": col("p99_ms"),
        "wal_used": col("wal_frames", FRAME_BYTES / 1048576),
        "wal_file": col("watched_bytes", 1 / 1048576),
    }


def main():
    out, runs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    fig, axes = plt.subplots(
        len(runs), 1, figsize=(11, 3.2 * len(runs)), squeeze=False, sharey=True
    )
    for ax, (label, path) in zip(axes[:, 0], runs):
        s = read(path)
        ax.plot(s["t"], s["max"], lw=0.7, color="tab:red", label="max per 100 ms")
        ax.plot(s["t"], s["p99"], lw=0.7, color="tab:blue", label="p99 per 100 ms")
        ax.set_ylabel("latency (ms)")
        ax.set_title(label, fontsize=10)
        wal = ax.twinx()
        wal.plot(s["t"], s["wal_used"], lw=0.8, color="tab:green", label="WAL in use (MiB)")
        wal.plot(s["t"], s["wal_file"], lw=0.8, ls="--", color="tab:gray", label="WAL file (MiB)")
        wal.set_ylabel("WAL (MiB)")
        lines = ax.get_legend_handles_labels()
        more = wal.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("seconds into the run")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
