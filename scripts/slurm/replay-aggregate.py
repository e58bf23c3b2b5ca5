#!/usr/bin/env python3
"""Join the per-task JSON reports of a replay sweep into one CSV table.

    replay-aggregate.py [--shapes shapes.txt] [-o table.csv] DIR

DIR holds out-<task>.json files written by `moeplace-replay --json` in the
array tasks of replay-sweep.sbatch. Each JSON document is flattened: nested
objects become dotted column names (policies.sw_avg.max_load_ratio), lists
are indexed (layers.0.gap); numbers, strings and booleans are kept. One row
per task, sorted by task index; the columns are the union over all files (a
field missing from one report is left empty). With --shapes, the task's
shape.ranks/shape.slots/shape.nodes from the shapes table are added first, so
the table is readable even if the replay's JSON does not repeat them.

Exit status: 0 on success, 1 when a report is missing or malformed (named
with its path), 2 on bad usage. Tasks that did not write a report are listed
on stderr; with --shapes, every shape is expected to have one.
"""
import argparse
import csv
import json
import os
import re
import sys


def flatten(value, prefix, out):
    if isinstance(value, dict):
        for key, sub in value.items():
            flatten(sub, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            flatten(sub, f"{prefix}.{i}" if prefix else str(i), out)
    elif value is None:
        out[prefix] = ""
    else:
        out[prefix] = value


def read_shapes(path):
    """Same rules as replay-sweep.sbatch: '#' comments, 3 integers a line."""
    shapes = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 3 or not all(x.isdigit() for x in fields):
                raise ValueError(f"{path}:{lineno}: expected 'ranks slots nodes'")
            shapes.append(tuple(int(x) for x in fields))
    return shapes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="directory with out-<task>.json files")
    ap.add_argument("--shapes", help="shapes table of the sweep (adds ranks/slots/nodes)")
    ap.add_argument("-o", "--output", help="CSV file to write [stdout]")
    args = ap.parse_args()

    try:
        shapes = read_shapes(args.shapes) if args.shapes else None
        names = os.listdir(args.dir)
    except (OSError, ValueError) as e:
        print(f"replay-aggregate: {e}", file=sys.stderr)
        return 2

    reports = {}
    for name in names:
        m = re.fullmatch(r"out-(\d+)\.json", name)
        if m:
            reports[int(m.group(1))] = os.path.join(args.dir, name)
    if not reports:
        print(f"replay-aggregate: no out-<task>.json in {args.dir}", file=sys.stderr)
        return 1

    rows, columns, status = [], [], 0
    for task in sorted(reports):
        try:
            with open(reports[task], encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            print(f"replay-aggregate: {reports[task]}: {e}", file=sys.stderr)
            status = 1
            continue
        row = {"task": task}
        if shapes is not None:
            if task >= len(shapes):
                print(f"replay-aggregate: {reports[task]}: task {task} is not in {args.shapes}",
                      file=sys.stderr)
                status = 1
                continue
            # Prefixed: the report may have its own ranks/slots/nodes fields.
            row["shape.ranks"], row["shape.slots"], row["shape.nodes"] = shapes[task]
        flatten(doc, "", row)
        for key in row:
            if key not in columns:
                columns.append(key)
        rows.append(row)

    if shapes is not None:
        missing = [t for t in range(len(shapes)) if t not in reports]
        if missing:
            print(f"replay-aggregate: no report for task(s) {missing}", file=sys.stderr)
            status = 1

    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    with out:
        w = csv.DictWriter(out, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
    return status


if __name__ == "__main__":
    sys.exit(main())
