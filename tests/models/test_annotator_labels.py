"""Label tasks (a few fixed replies, as in RTE or bluebirds) without a display order: a lean
toward one label is read from the label order, not lost behind the warehouse's reply order."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dissensus.models.annotator import AnnotatorConfig, AnnotatorModel
from dissensus.models.annotator.data import encode_frame, vote_order
from dissensus.models.annotator.lapse_cues import label_task

YES, NO = "The hypothesis follows from the text.", "It does not follow."


def label_votes(n_items: int = 240, n_raters: int = 14, over_callers: int = 5,
                seed: int = 0) -> tuple[pl.DataFrame, set[str]]:
    """Every rater labels every item; the label replies sit in a random order per item (as the
    warehouse's hash order leaves them); ``over_callers`` raters turn half of their votes for
    NO into votes for YES, the others err on 8% of items at random."""
    rng = np.random.default_rng(seed)
    gold_yes = rng.random(n_items) < 0.5
    yes_first = rng.random(n_items) < 0.5
    rows = []
    leaners = {f"r{i}" for i in range(over_callers)}
    for r in range(n_raters):
        rid = f"r{r}"
        for j in range(n_items):
            says_yes = gold_yes[j] ^ (rng.random() < 0.08)
            if rid in leaners and not says_yes and rng.random() < 0.5:
                says_yes = True
            rows.append({
                "comparison_id": f"{rid}-{j}", "reviewer_id": rid, "pair_id": f"p{j}",
                "prompt_id": f"q{j}",
                "outcome": 1 if says_yes == yes_first[j] else -1, "first_shown": None,
                "response_1_length": len(YES) if yes_first[j] else len(NO),
                "response_2_length": len(NO) if yes_first[j] else len(YES),
            })
    frame = pl.DataFrame(rows, schema_overrides={"outcome": pl.Int8, "first_shown": pl.Int8,
                                                 "response_1_length": pl.Int32,
                                                 "response_2_length": pl.Int32})
    return frame, leaners


def test_label_order_replaces_a_missing_display_order_only_in_label_tasks() -> None:
    frame, _ = label_votes(n_items=20, n_raters=3)
    assert label_task(frame)
    s = vote_order(frame, label_order=True)
    longer_first = frame["response_1_length"] > frame["response_2_length"]
    assert np.array_equal(s, np.where(longer_first.to_numpy(), 1, -1))
    assert not vote_order(frame, label_order=False).any()
    shown = frame.with_columns(first_shown=pl.lit(2, pl.Int8))
    assert (vote_order(shown, label_order=True) == -1).all()  # a display order wins
    free_text = frame.with_columns(response_1_length=pl.int_range(pl.len()) + 20)
    assert not label_task(free_text)
    assert encode_frame(free_text, label_order=True).cues.label_order is False


@pytest.mark.parametrize("label_order", [True, False])
def test_raters_who_over_call_one_label_are_seen(label_order: bool) -> None:
    frame, leaners = label_votes()
    model = AnnotatorModel(AnnotatorConfig(max_iter=60, label_order=label_order)).fit(frame)
    est = model.reviewer_estimates_
    flagged = set(est.filter(pl.col("flagged"))["reviewer_id"].to_list())
    if not label_order:  # behind the reply order the lean is invisible
        assert len(flagged & leaners) <= 2
        return
    # read in label order, their votes for YES on NO items are lapses tilted toward YES (or a
    # lean toward that label): either way they, and only they, are flagged
    assert flagged == leaners
    leans = est.filter(pl.col("reviewer_id").is_in(list(leaners)))["lean"].drop_nulls()
    assert any("the longer label text" in lean for lean in leans)
    warnings = model.fit_summary_["diagnostics"]["warnings"]
    assert any("label order" in w for w in warnings)


def test_agreement_ranks_the_over_callers_last_and_a_loaded_fit_reads_labels_alike(
        tmp_path) -> None:
    frame, leaners = label_votes(seed=1)
    model = AnnotatorModel(AnnotatorConfig(max_iter=60)).fit(frame)
    est = model.reviewer_estimates_
    lean = est.filter(pl.col("reviewer_id").is_in(list(leaners)))["agreement"]
    careful = est.filter(~pl.col("reviewer_id").is_in(list(leaners)))["agreement"]
    assert lean.max() < careful.min()
    assert careful.mean() - lean.mean() > 0.1 and careful.max() <= 1.0
    model.save(tmp_path / "fit")
    loaded = AnnotatorModel.load(tmp_path / "fit")
    assert loaded.predictive_ is not None and loaded.predictive_.cues.label_order
    np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame),
                               atol=1e-9)


def spammer_votes(n_items: int = 200, n_careful: int = 30, per_item: int = 6,
                  spammers: int = 3, seed: int = 1) -> pl.DataFrame:
    """Each item labelled by ``per_item`` of ``n_careful`` raters (10% errors), and by every
    one of ``spammers`` raters who answer NO whatever the item (as Snow et al.'s temporal set
    has a few busy workers who do)."""
    rng = np.random.default_rng(seed)
    gold_yes = rng.random(n_items) < 0.5
    yes_first = rng.random(n_items) < 0.5
    rows = []
    for j in range(n_items):
        votes = [(f"c{r}", bool(gold_yes[j] ^ (rng.random() < 0.1)))
                 for r in rng.choice(n_careful, per_item, replace=False)]
        votes += [(f"s{s}", False) for s in range(spammers)]
        rows += [{"comparison_id": f"{rid}-{j}", "reviewer_id": rid, "pair_id": f"p{j}",
                  "prompt_id": f"q{j}", "outcome": 1 if says_yes == yes_first[j] else -1,
                  "first_shown": None,
                  "response_1_length": len(YES) if yes_first[j] else len(NO),
                  "response_2_length": len(NO) if yes_first[j] else len(YES)}
                 for rid, says_yes in votes]
    return pl.DataFrame(rows, schema_overrides={"outcome": pl.Int8, "first_shown": pl.Int8,
                                                "response_1_length": pl.Int32,
                                                "response_2_length": pl.Int32})


def test_spammers_who_click_one_label_lapse_on_every_vote_and_form_no_school() -> None:
    frame = spammer_votes()
    fitted = AnnotatorModel(AnnotatorConfig(max_iter=150)).fit(frame)
    est = fitted.reviewer_estimates_
    spam = est.filter(pl.col("reviewer_id").str.starts_with("s"))
    careful = est.filter(pl.col("reviewer_id").str.starts_with("c"))
    assert fitted.fit_summary_["n_schools"] == 1
    assert spam["flagged"].all() and spam["reliability"].max() < 0.2, spam
    assert not careful["flagged"].any(), careful.filter(pl.col("flagged"))
    notes = fitted.fit_summary_["diagnostics"]["verdict_notes"]
    assert any(n.startswith("3 reviewers lapse on most of their votes") and "cast 33%" in n
               for n in notes), notes
    # held below one half, the spammers explain their other half as a school of their own
    held = AnnotatorModel(AnnotatorConfig(max_iter=150, label_lapse_max=0.5)).fit(frame)
    assert held.fit_summary_["n_schools"] == 2
    assert held.reviewer_estimates_.filter(
        pl.col("reviewer_id").str.starts_with("s"))["reliability"].min() > 0.45
