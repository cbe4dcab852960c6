"""How a result changes from job to job, in a notebook or as a script.

    python examples/analysis.py --tag rlmol_exp --key reward [--out reward.png]

Needs the analysis extra: pip install 'jobledger[analysis]'. The connection comes from
the usual settings (jobledger.toml, JOBLEDGER_URL, ...), as for the CLI.
"""

from __future__ import annotations

import argparse

import jobledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True)
    parser.add_argument("--key", default="reward", help="the result key to follow")
    parser.add_argument("--out", help="save the chart to this PNG file")
    args = parser.parse_args()

    # One row per job: its state, times, usage and one column per result key.
    df = jobledger.to_dataframe(tag=args.tag, results=True)
    print(f"{len(df)} jobs of {args.tag}")
    print(df.groupby("state")["elapsed_s"].describe()[["count", "mean", "max"]])
    if args.key not in df.columns:
        raise SystemExit(f"no job of {args.tag} has a result {args.key!r}")

    # Numbers only (a job that wrote "n/a" or nothing is a gap, not a zero).
    import pandas as pd

    values = pd.to_numeric(df[args.key], errors="coerce")
    runs = df.assign(value=values).sort_values("submitted_at")
    best = runs.loc[runs["value"].idxmax()] if runs["value"].notna().any() else None
    if best is not None:
        print(f"best {args.key}: {best['value']:.4g} (job {best['job_id']})")
    print(f"{runs['value'].notna().sum()} jobs with a value, {runs['value'].isna().sum()} gaps")

    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(range(1, len(runs) + 1), runs["value"], marker=".", linewidth=1)
        ax.plot(range(1, len(runs) + 1), runs["value"].cummax(), linewidth=1, label="best so far")
        ax.set_xlabel("job, in submission order")
        ax.set_ylabel(args.key)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out)
        print(f"chart written to {args.out}")


if __name__ == "__main__":
    main()
