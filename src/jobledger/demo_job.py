"""The demo's job, modelled on the seed's test_process.py: random rewards, then the top 3.

Run by ``jobledger demo`` through the local scheduler; also usable by hand:
``python -m jobledger.demo_job --rewards 5 [--fail] [--sleep 30]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid

import jobledger


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rewards", type=int, default=5, help="How many rewards to write.")
    parser.add_argument("--fail", action="store_true", help="Exit with status 3 at the end.")
    parser.add_argument("--sleep", type=float, default=0.5, help="Seconds of 'work'.")
    args = parser.parse_args(argv)

    results = jobledger.results()  # tag and job ID come from the environment
    print(f"job {results.job_id} of tag {results.tag} writes under {results.prefix}:")
    time.sleep(args.sleep)
    # Like the seed: one uuid-named key per reward, so keys never clash.
    results.update({str(uuid.uuid1()): random.random() for _ in range(args.rewards)})
    for entry in results.top(3):
        print(f"  {entry.key}: {entry.value}")
    if args.fail:
        print("failing on purpose", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
