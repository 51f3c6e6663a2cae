"""Reply content (reduced sentence embeddings) as the school deviations' features."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.annotator.content import (
    ContentBasis,
    VoteAxis,
    school_examples,
    sentence_sums,
    split_sentences,
    with_content,
)
from dissensus.models.annotator.data import encode_frame
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.features import pair_features
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.models.reward.encoder import load_encoder
from dissensus.warehouse.demo import WorldConfig, simulate_world


def test_basis_gives_standardised_components_and_caps_the_dimensions() -> None:
    rng = np.random.default_rng(0)
    e = rng.normal(size=(200, 10)) @ rng.normal(size=(10, 10))
    basis = ContentBasis.fit(e, 4)
    z = basis.transform(e)
    assert z.shape == (200, 4)
    assert np.allclose(z.mean(axis=0), 0.0, atol=1e-9)
    assert np.allclose(z.std(axis=0, ddof=1), 1.0)
    assert ContentBasis.fit(e[:3], 32).dims <= 3  # no more components than replies allow
    with pytest.raises(ValueError, match="2\\+ replies"):
        ContentBasis.fit(e[:1], 4)


def _per_pair(tags: bool) -> pl.DataFrame:
    n = 12
    frame = pl.DataFrame({
        "pair_id": [str(i) for i in range(n)],
        "response_1_content": [[1.0, float(i)] for i in range(n)],
        "response_2_content": [[0.0, 0.0]] * n,
    })
    if tags:
        frame = frame.with_columns(response_1_tags=pl.lit(["refusal"]),
                                   response_2_tags=pl.lit([], dtype=pl.List(pl.String)))
    return frame


def test_feature_source_decides_between_tags_and_content() -> None:
    tagged = _per_pair(tags=True)
    auto = pair_features(tagged)
    assert auto is not None and auto.names == ["refusal"] and auto.source == "tags"
    content = pair_features(tagged, "embeddings")
    assert content is not None and content.names == ["content_1", "content_2"]
    assert content.diff[3].tolist() == [1.0, 3.0]
    both = pair_features(tagged, "both")
    assert both is not None and both.source == "both" and both.n_features == 3
    assert both.content_index == [1, 2]
    assert pair_features(tagged, "none") is None
    untagged = pair_features(_per_pair(tags=False))  # auto without tags: the content
    assert untagged is not None and untagged.source == "embeddings"


def test_missing_content_counts_as_no_difference() -> None:
    frame = _per_pair(tags=False).with_columns(
        pl.when(pl.col("pair_id") == "0").then(None).otherwise(pl.col("response_1_content"))
        .alias("response_1_content"))
    feats = pair_features(frame)
    assert feats is not None and not feats.diff[0].any() and feats.diff[1].any()


@pytest.fixture(scope="module")
def text_world() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The demo world without its tags, the replies' content from the hashing encoder (what
    the replies say, as word hashes: deterministic and fast)."""
    world = simulate_world(WorldConfig(n_comparisons=4000, seed=2))
    frame = model_frame_from_world(world.judgments, world.pairs, world.responses)
    frame = frame.drop("response_1_tags", "response_2_tags")
    texts = world.responses["text"].to_list()
    e = load_encoder("hashing").encode(texts)
    coords = ContentBasis.fit(e, 32).transform(e)
    ids = world.responses["response_id"].cast(pl.String).to_list()
    return with_content(frame, ids, coords), world.reviewers


def _careful_ari(model: AnnotatorModel, reviewers: pl.DataFrame) -> float:
    from sklearn.metrics import adjusted_rand_score

    t = model.reviewer_estimates_.join(reviewers, on="reviewer_id").filter(~pl.col("is_rushed"))
    return float(adjusted_rand_score(t["school_index"], t["school"]))


def test_schools_are_found_from_what_the_replies_say(text_world) -> None:  # type: ignore[no-untyped-def]
    frame, reviewers = text_world
    assert encode_frame(frame).features is not None
    content = AnnotatorModel(AnnotatorConfig(n_schools=2, features="embeddings")).fit(frame)
    votes = AnnotatorModel(AnnotatorConfig(n_schools=2, features="none")).fit(frame)
    diag = content.fit_summary_["diagnostics"]
    assert diag["feature_source"] == "embeddings"
    assert len(diag["content_directions"]) == 2 and len(diag["content_directions"][0]) == 32
    assert diag["feature_share"] > 0.5  # the content explains most pairs' deviations
    ari_content, ari_votes = _careful_ari(content, reviewers), _careful_ari(votes, reviewers)
    # seen: 0.73 with the content against 0.61 from the votes alone (hashed words; MiniLM does
    # better, see benchmarks/content_schools.py)
    assert ari_content >= 0.7, (ari_content, ari_votes)
    assert ari_content >= ari_votes + 0.08, (ari_content, ari_votes)


def test_school_examples_are_the_replies_furthest_along_each_direction() -> None:
    coords = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-1.0, 0.0]])
    texts = ["escalate now", "book a slot", "both", "neither  of\nthem"]
    picked = school_examples(np.array([[1.0, 0.0], [0.0, 1.0]]), coords, texts, top=1)
    assert picked == [["escalate now"], ["book a slot"]]
    long = school_examples(np.array([[1.0, 0.0]]), coords, ["x" * 300, *texts[1:]], width=20)
    assert len(long[0][0]) == 20 and long[0][0].endswith("…")


def test_two_label_texts_give_each_school_the_one_it_leans_toward() -> None:
    # a label task: the only "replies" are the two label texts; the first school must not
    # take both and leave the second with nothing
    coords = np.array([[1.0], [-1.0]])
    texts = ["Yes, the text entails the hypothesis.", "No, it does not."]
    picked = school_examples(np.array([[-0.4], [0.4]]), coords, texts)
    assert picked == [["No, it does not."], ["Yes, the text entails the hypothesis."]]
    # replies on the far side of the mean are never named for a school
    assert school_examples(np.array([[1.0]]), coords, texts) == [[texts[0]]]


def test_replies_are_cut_into_sentences_after_their_ends() -> None:
    assert split_sentences("Thanks for asking. Please call 911 now! Can I help?  ") == [
        "Thanks for asking.", "Please call 911 now!", "Can I help?"]
    assert split_sentences("no full stop here") == ["no full stop here"]
    assert split_sentences("   ") == ["   "]  # an empty reply still has one (empty) unit


def test_a_reply_is_the_sum_of_its_sentences_each_embedded_once() -> None:
    encoder = load_encoder("default")
    calls: list[list[str]] = []

    def embed(sentences: list[str]) -> np.ndarray:
        calls.append(sentences)
        return encoder.encode(sentences)

    texts = ["Please see a doctor today. I can book you in.", "I can book you in.",
             "Please see a doctor today."]
    sums = sentence_sums(texts, embed)
    assert len(calls) == 1 and sorted(calls[0]) == sorted(set(calls[0]))
    assert len(calls[0]) == 2  # two distinct sentences, however often they occur
    assert np.allclose(sums[0], sums[1] + sums[2], atol=1e-5)
    with pytest.raises(ValueError, match="no texts"):
        sentence_sums([], embed)


def _planted_votes(seed: int, n_replies: int = 240, dims: int = 24, n_pairs: int = 600,
                   per_pair: int = 6) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray,
                                               np.ndarray]:
    """Votes of two schools that differ along one planted direction of the embeddings."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n_replies, dims))
    direction = rng.normal(size=dims)
    quality = rng.normal(size=n_replies)
    reviewers = [f"r{i}" for i in range(40)]
    school = {r: i % 2 for i, r in enumerate(reviewers)}
    rows = []
    for j in range(n_pairs):
        a, b = rng.choice(n_replies, 2, replace=False)
        deviation = 0.5 * (e[a] - e[b]) @ direction
        for r in rng.choice(reviewers, per_pair, replace=False):
            margin = quality[a] - quality[b] + (deviation if school[r] else -deviation)
            vote = 1 if margin + rng.logistic() > 0 else -1
            rows.append((f"p{j}", r, vote, f"x{a}", f"x{b}"))
    votes = pl.DataFrame(rows, schema=["pair_id", "reviewer_id", "outcome", "response_1_id",
                                       "response_2_id"], orient="row")
    schools = pl.DataFrame({"reviewer_id": reviewers, "school": [school[r] for r in reviewers]})
    return votes, schools, e, direction


def test_a_content_axis_is_learnt_from_the_votes_of_two_schools() -> None:
    votes, schools, e, direction = _planted_votes(0)
    ids = [f"x{i}" for i in range(e.shape[0])]
    axis = VoteAxis.fit(votes, schools, ids, e)
    assert axis is not None and axis.n_pairs > 300
    assert np.isclose(axis.scores.mean(), 0.0) and np.isclose(axis.scores.std(), 1.0)
    # the learnt scores follow the planted direction (sign: school 1 minus school 0)
    assert np.corrcoef(axis.scores, e @ direction)[0, 1] > 0.9
    # one school alone has no difference to learn
    assert VoteAxis.fit(votes, schools.filter(pl.col("school") == 1), ids, e) is None
    # the schools swapped give the same axis, reversed
    swapped = schools.with_columns(school=1 - pl.col("school"))
    assert np.allclose(VoteAxis.fit(votes, swapped, ids, e).scores, -axis.scores)  # type: ignore[union-attr]


def test_a_refit_with_other_content_takes_the_choice_of_k_and_makes_only_the_final_fit(
        text_world) -> None:  # type: ignore[no-untyped-def]
    frame, _ = text_world
    config = AnnotatorConfig(features="embeddings")
    first = AnnotatorModel(config).fit(frame)
    # other features on the same votes: the content axis's refit, here a further column
    coords = np.asarray(frame["response_1_content"].to_list())
    extra = frame.with_columns(
        response_1_content=pl.Series([[*c, c[0] - c[1]] for c in coords]),
        response_2_content=pl.Series([[*c, c[0] - c[1]] for c in
                                      frame["response_2_content"].to_list()]))
    reused = AnnotatorModel(config).fit(extra, same_votes_as=first)
    cold = AnnotatorModel(config).fit(extra)
    rows = reused.result_.diagnostics["fits"]
    assert [r.get("reused", False) for r in rows] == [True] * (len(rows) - 1) + [False]
    assert not any(r.get("reused") for r in cold.result_.diagnostics["fits"])
    assert len(rows) == len(cold.result_.diagnostics["fits"])
    # the choice reads no features, so taking it changes nothing in the fit
    assert reused.n_schools_ == cold.n_schools_
    assert reused.reviewer_estimates_.equals(cold.reviewer_estimates_)
    # other votes, or other settings: the choice does not hold and is made again
    choice = first.result_.school_choice
    data = encode_frame(extra, None, "embeddings").judgments
    assert choice is not None and choice.fits(data, config)
    fewer = encode_frame(extra.filter(pl.col("reviewer_id") != extra["reviewer_id"][0]),
                         None, "embeddings").judgments
    assert not choice.fits(fewer, config)
    assert not choice.fits(data, config.model_copy(update={"seed": 1}))
    assert not choice.fits(data, config.model_copy(update={"n_schools": 2}))
