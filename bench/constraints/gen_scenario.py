#!/usr/bin/env python3
"""Generate a large, deterministic `hwbp constraints` scenario for timing.

Default: 10,000 commands over 64 CPUs and 1,000 tasks, a mix of
  - bp on all CPUs for a task, bp for a task on one CPU, CPU bps (no task),
    data and instruction types, some flexible and some weight 2;
  - del of a live breakpoint (and, rarely, of an unknown name);
  - modify of a live breakpoint's type.
Every line is one command, so the output must have exactly as many lines.

Usage: gen_scenario.py [--lines N] [--cpus N] [--tasks N] [--seed S] > scenario.txt
"""
import argparse
import random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--cpus", type=int, default=64)
    ap.add_argument("--tasks", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    live = []
    next_id = 0
    out = []
    for _ in range(args.lines):
        roll = rng.random()
        if roll < 0.55 or not live:
            name = f"b{next_id}"
            next_id += 1
            kind = rng.random()
            if kind < 0.3:
                target = f"cpu=all task=t{rng.randrange(args.tasks)}"
            elif kind < 0.8:
                target = f"cpu={rng.randrange(args.cpus)} task=t{rng.randrange(args.tasks)}"
            else:
                target = f"cpu={rng.randrange(args.cpus)}"
            line = f"bp {name} {target} type={rng.choice(['data', 'data', 'inst'])}"
            if rng.random() < 0.1:
                line += " weight=2"
            if rng.random() < 0.1:
                line += " flexible"
            out.append(line)
            # The name may be refused; del/modify of it then prints EINVAL, still one line.
            live.append(name)
        elif roll < 0.85:
            if rng.random() < 0.02:
                out.append(f"del never{next_id}")
            else:
                out.append(f"del {live.pop(rng.randrange(len(live)))}")
        else:
            name = live[rng.randrange(len(live))]
            out.append(f"modify {name} type={rng.choice(['data', 'inst'])}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
