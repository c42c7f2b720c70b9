"""Summarise a py-spy ``--format raw`` profile: the functions that dominate.

.venv/bin/python -m bench --workload broadcast --clients 500 --profile /tmp/p
.venv/bin/python -m bench.profile /tmp/p/broadcast-w1-500.txt
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_LINE = re.compile(r":\d+\)$")


def summarise(path: str, top: int = 25) -> str:
    """Self and inclusive sample shares per function, most first."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            # One entry per function, whatever line it was on.
            frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
            total += count
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self %  function"]
    for frame, count in own.most_common(top):
        out.append(f"{100 * count / total:6.1f}  {frame}")
    out += ["", "incl %  function"]
    for frame, count in inclusive.most_common(top):
        out.append(f"{100 * count / total:6.1f}  {frame}")
    return "\n".join(out)


def main() -> None:
    """Print the summary of each profile named on the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.paths:
        print(f"== {path}")
        print(summarise(path, args.top))


if __name__ == "__main__":
    main()
