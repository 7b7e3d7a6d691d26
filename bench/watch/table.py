"""Turns bench/watch/run.sh's raw results into a Markdown table.

Usage: table.py RESULTS_TSV HITS SPEC ROUNDS
Each TSV line: tool, wall s, CPU s, exit status, counted, reported, lost (free text).
A run is cut short when the tool failed or its target ended before making all its writes
(e.g. killed by a signal); such runs are left out of the medians and counted in the table.
"""
import statistics
import sys

path, hits, spec, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rows, order = {}, []
for line in open(path):
    name, wall, cpu, rc, counted, reported, lost = line.rstrip("\n").split("\t")
    if name not in rows:
        rows[name] = []
        order.append(name)
    rows[name].append(dict(wall=wall, cpu=cpu, rc=rc, counted=counted, reported=reported, lost=lost))


def complete(run):
    if run["wall"] == "NA" or run["rc"] != "0" or "(ended:" in run["lost"]:
        return False
    return not run["counted"].isdigit() or int(run["counted"]) >= hits


def median(name, key):
    values = [float(r[key]) for r in rows.get(name, []) if complete(r)]
    return statistics.median(values) if values else None


rec, stat = median("perf record -c 1", "wall"), median("perf stat", "wall")
print(f"{hits:,} writes to one `long`, watched as `{spec}`; median of {rounds} round(s).\n")
print("| tool | wall s | CPU s (tool + prog) | counted | reported | lost | vs perf record | vs perf stat |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name in order:
    runs = rows[name]
    done = [r for r in runs if complete(r)]
    shown = done[-1] if done else runs[-1]
    short = len(runs) - len(done)
    label = name + (f" ({short} of {len(runs)} runs cut short, left out)" if short and done else "")
    wall, cpu = median(name, "wall"), median(name, "cpu")
    if wall is None:
        print(f"| {label} | - | - | {shown['counted']} | {shown['reported']} | {shown['lost']} | - | - |")
        continue
    r_rec = f"{wall / rec:.3f}x" if rec else "-"
    r_stat = f"{wall / stat:.3f}x" if stat else "-"
    print(f"| {label} | {wall:.2f} | {cpu:.2f} | {shown['counted']} | {shown['reported']} | "
          f"{shown['lost']} | {r_rec} | {r_stat} |")
for name in order:
    for r in rows[name]:
        if not complete(r):
            print(f"\nCut short: {name}: wall {r['wall']} s, exit {r['rc']}, counted {r['counted']}, {r['lost']}")
