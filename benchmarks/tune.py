"""Tuning helper: `ours` under several settings of digest.rank's module constants, on the same users.

Each variant is a comma-separated list of NAME=VALUE assignments to digest.rank constants ("base" = as shipped);
the paired gap to the first variant comes with a bootstrap CI. Tune on seed 1 only (seed 2 is the report).

Example:
    .venv/bin/python benchmarks/tune.py --seed 1 --protocols online --online-users 40 \
        base C_GROWTH=0.05 "NEG_KNN_WEIGHT=0.5,NEG_KNN_MIN=3"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (sets sys.path and the offline flags)
from citeulike import load_users  # noqa: E402

from digest import rank  # noqa: E402


def parse(variant: str) -> dict[str, float]:
    if variant == "base":
        return {}
    out = {}
    for part in variant.split(","):
        name, value = part.split("=")
        if not hasattr(rank, name):
            raise SystemExit(f"digest.rank has no {name}")
        out[name] = type(getattr(rank, name))(float(value))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--data", type=Path, default=quality.ROOT / "../shared/data/citeulike-a")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--online-users", type=int, default=40)
    parser.add_argument("--protocols", default="online")
    parser.add_argument("--model", default=quality.DEFAULT_MODEL)
    args = parser.parse_args()

    titles, vecs, _ = quality.load_for_ours(args.data, args.model, quality.ROOT / ".cache")
    methods = quality.make_methods(titles, vecs, ["ours"])
    setup = quality.Setup(load_users(args.data), len(titles), args.users, args.seed)
    defaults = {name: getattr(rank, name) for v in args.variants for name in parse(v)}
    for proto in args.protocols.split(","):
        first = None
        for variant in args.variants:
            for name, value in defaults.items():
                setattr(rank, name, value)
            for name, value in parse(variant).items():
                setattr(rank, name, value)
            t = time.perf_counter()
            if proto == "online":
                res = quality.run_online(setup, methods, args.seed, args.online_users)["ours"]
                key = "P@10"
            else:
                hard, field = proto.startswith("hard"), proto.startswith("field")
                k = int(proto.removeprefix("hard").removeprefix("static").removeprefix("field"))
                res = quality.run_static(setup, methods, k, hard, args.seed, field=field)["ours"]
                key = "nDCG@10"
            values = res[key]
            line = f"{proto} {variant:50s} {key} {values.mean():.4f}"
            if first is None:
                first = values
            else:
                gap = values - first
                lo, hi = quality.bootstrap(gap, 1000)
                line += f"  gap {gap.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"
            if proto == "online":
                line += "  days " + " ".join(f"{v:.2f}" for v in res["P@10/day"].mean(axis=0))
            print(line + f"  ({time.perf_counter() - t:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
