"""Agreement per demographic group on POPQUORN offensiveness ratings (Pei & Jurgens 2023).

Krippendorff's alpha (ordinal, ratings 1-5) computed with the ``krippendorff`` package on the
raters x items matrix of each group (only raters of the group; items need two of them), with a
bootstrap over items.

    .venv/bin/python benchmarks/popquorn_agreement.py [--path ../shared/data/popquorn]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import krippendorff
import numpy as np
import polars as pl


def alpha(frame: pl.DataFrame, n_boot: int, rng: np.random.Generator) -> tuple[float, ...]:
    wide = frame.pivot(on="instance_id", index="user_id", values="offensiveness",
                       aggregate_function="first")
    data = wide.drop("user_id").to_numpy().astype(float)
    data = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    if data.shape[1] < 2:
        return float("nan"), float("nan"), float("nan"), data.shape[1]
    value = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    draws = []
    for _ in range(n_boot):
        cols = rng.integers(0, data.shape[1], data.shape[1])
        draws.append(krippendorff.alpha(reliability_data=data[:, cols],
                                        level_of_measurement="ordinal"))
    low, high = np.nanpercentile(draws, [2.5, 97.5]) if draws else (np.nan, np.nan)
    return float(value), float(low), float(high), data.shape[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "popquorn"
    parser.add_argument("--path", type=Path, default=default)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--min-raters", type=int, default=5)
    args = parser.parse_args()
    df = pl.read_csv(args.path / "offensiveness_raw_data.csv")
    rng = np.random.default_rng(0)
    rows = []
    value, low, high, items = alpha(df, args.n_boot, rng)
    rows.append(("all", "all", df["user_id"].n_unique(), items, value, low, high))
    for attribute in ("gender", "race", "age", "education"):
        for (group,), part in df.group_by([attribute], maintain_order=True):
            raters = part["user_id"].n_unique()
            if raters < args.min_raters:
                continue
            value, low, high, items = alpha(part, args.n_boot, rng)
            rows.append((attribute, str(group), raters, items, value, low, high))
    out = pl.DataFrame(rows, schema=["attribute", "group", "raters", "items_2plus", "alpha",
                                     "alpha_low", "alpha_high"], orient="row")
    pl.Config.set_tbl_rows(60)
    pl.Config.set_tbl_width_chars(120)
    print(out.with_columns(pl.col(pl.Float64).round(3)).sort(["attribute", "group"]))


if __name__ == "__main__":
    main()
