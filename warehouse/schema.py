"""The warehouse schema as an ordered list of migrations.

Every migration is applied once, in order, inside one transaction, and recorded in
``schema_version``. Opening an older file upgrades it; a file whose version is newer than the
newest migration known here is refused (an older dissensus must not write to it).

Large tables (comparisons, quarantine) carry no primary-key constraints: DuckDB's ART indexes slow
bulk loads, and ingest already guarantees uniqueness with anti-joins. Small dimension tables keep
their keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_V1: Final = (
    """
    CREATE TABLE settings (
        key VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE ingest_batches (
        batch_id INTEGER PRIMARY KEY,
        file_path VARCHAR NOT NULL,
        file_name VARCHAR NOT NULL,
        file_sha256 VARCHAR NOT NULL,
        file_bytes BIGINT NOT NULL,
        format VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        seconds DOUBLE,
        rows_read BIGINT NOT NULL DEFAULT 0,
        rows_accepted BIGINT NOT NULL DEFAULT 0,
        rows_quarantined BIGINT NOT NULL DEFAULT 0,
        rows_duplicate BIGINT NOT NULL DEFAULT 0,
        pseudonymised BOOLEAN NOT NULL DEFAULT false,
        notes VARCHAR                  -- e.g. source columns that are not part of the contract
    )
    """,
    """
    CREATE TABLE texts (
        text_id VARCHAR PRIMARY KEY,
        body VARCHAR NOT NULL,
        n_chars INTEGER NOT NULL,
        first_batch_id INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE text_aliases (
        kind VARCHAR NOT NULL,          -- 'prompt' or 'response'
        external_id VARCHAR NOT NULL,   -- the id the source used
        text_id VARCHAR NOT NULL,
        PRIMARY KEY (kind, external_id)
    )
    """,
    """
    CREATE TABLE prompts (
        prompt_id VARCHAR PRIMARY KEY,  -- = text_id of the prompt text
        category VARCHAR,
        first_batch_id INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE responses (
        response_id VARCHAR PRIMARY KEY,  -- hash of prompt_id and text_id
        prompt_id VARCHAR NOT NULL,
        text_id VARCHAR NOT NULL,
        model VARCHAR,
        tags VARCHAR[],
        first_batch_id INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE pairs (
        pair_id VARCHAR PRIMARY KEY,
        prompt_id VARCHAR NOT NULL,
        response_1_id VARCHAR NOT NULL,   -- canonical orientation: response_1_id < response_2_id
        response_2_id VARCHAR NOT NULL,
        first_batch_id INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE reviewers (
        reviewer_id VARCHAR PRIMARY KEY,
        pseudonymised BOOLEAN NOT NULL,
        first_batch_id INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE reviewer_attributes (
        reviewer_id VARCHAR NOT NULL,
        attribute VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,          -- '' for attributes that hold everywhere
        value VARCHAR,
        batch_id INTEGER NOT NULL,
        PRIMARY KEY (reviewer_id, attribute, scope)
    )
    """,
    """
    CREATE TABLE comparisons (
        comparison_id VARCHAR NOT NULL,
        id_given BOOLEAN NOT NULL,        -- false: derived from the row content
        row_hash VARCHAR NOT NULL,        -- content fingerprint, to tell duplicates from conflicts
        batch_id INTEGER NOT NULL,
        source_line BIGINT NOT NULL,
        reviewer_id VARCHAR,              -- null: the source has no reviewer ids
        has_reviewer BOOLEAN NOT NULL,
        pair_id VARCHAR NOT NULL,
        prompt_id VARCHAR NOT NULL,
        response_a_id VARCHAR NOT NULL,
        response_b_id VARCHAR NOT NULL,
        a_is_response_1 BOOLEAN NOT NULL,
        choice VARCHAR NOT NULL,          -- 'a', 'b' or 'tie', as the reviewer saw them
        outcome TINYINT NOT NULL,         -- +1 response_1 preferred, -1 response_2, 0 tie
        shown_first VARCHAR,              -- 'a' or 'b'
        first_shown TINYINT,              -- 1 or 2: which canonical response was shown first
        strength DOUBLE,
        created_at TIMESTAMP,
        seconds_spent DOUBLE,
        category VARCHAR,
        guideline_version VARCHAR,
        batch VARCHAR,
        rationale VARCHAR,
        gold_choice VARCHAR,
        gold_outcome TINYINT
    )
    """,
    """
    CREATE TABLE quarantine (
        batch_id INTEGER NOT NULL,
        file_path VARCHAR NOT NULL,
        line BIGINT NOT NULL,
        field VARCHAR,
        reason VARCHAR NOT NULL,
        raw VARCHAR,
        quarantined_at TIMESTAMP NOT NULL
    )
    """,
)

_V2_OUTPUTS: Final = (
    """
    CREATE TABLE fits (
        fit_id VARCHAR PRIMARY KEY,
        created_at TIMESTAMP NOT NULL,
        method VARCHAR NOT NULL,
        n_schools INTEGER NOT NULL,
        n_comparisons BIGINT NOT NULL,
        seconds DOUBLE NOT NULL,
        diagnostics JSON,
        config JSON,
        artefact_path VARCHAR
    )
    """,
    """
    CREATE TABLE reviewer_estimates (
        fit_id VARCHAR NOT NULL,
        reviewer_id VARCHAR NOT NULL,
        n_comparisons BIGINT NOT NULL,
        reliability DOUBLE,
        reliability_low DOUBLE,
        reliability_high DOUBLE,
        position_bias DOUBLE,
        school INTEGER,
        school_probability DOUBLE,
        flagged BOOLEAN NOT NULL,
        flag_reason VARCHAR
    )
    """,
    """
    CREATE TABLE pair_estimates (
        fit_id VARCHAR NOT NULL,
        pair_id VARCHAR NOT NULL,
        prompt_id VARCHAR NOT NULL,
        prompt VARCHAR,
        n_votes BIGINT NOT NULL,
        p_first DOUBLE,
        noise_share DOUBLE,
        pluralism_share DOUBLE,
        ambiguity_share DOUBLE,
        verdict VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE comparison_weights (
        fit_id VARCHAR NOT NULL,
        comparison_id VARCHAR NOT NULL,
        weight DOUBLE NOT NULL,
        school_weights DOUBLE[]
    )
    """,
    """
    CREATE TABLE reward_runs (
        run_id VARCHAR PRIMARY KEY,
        created_at TIMESTAMP NOT NULL,
        kind VARCHAR NOT NULL,
        fit_id VARCHAR,
        encoder VARCHAR NOT NULL,
        device VARCHAR NOT NULL,
        config JSON,
        metrics JSON,
        checkpoint_path VARCHAR
    )
    """,
    """
    CREATE TABLE reward_scores (
        run_id VARCHAR NOT NULL,
        response_id VARCHAR NOT NULL,
        head VARCHAR NOT NULL,
        score DOUBLE NOT NULL
    )
    """,
)

_V3_VOTE_INDEX: Final = (
    """
    CREATE TABLE vote_index (
        i BIGINT NOT NULL,              -- position: by reviewer, then time, then comparison_id
        r INTEGER NOT NULL,             -- reviewer code (vote_index_reviewers)
        p INTEGER NOT NULL,             -- pair code
        k INTEGER NOT NULL,             -- 1 for the reviewer's first judgment of the pair, ...
        outcome TINYINT,
        first_shown TINYINT,
        created_at TIMESTAMP,
        seconds_spent DOUBLE,
        gold_outcome TINYINT,
        first_outcome TINYINT,          -- of the reviewer's first judgment of the pair
        first_first_shown TINYINT,
        category VARCHAR,
        batch VARCHAR,
        guideline_version VARCHAR
    )
    """,
    """
    CREATE TABLE vote_index_reviewers (
        r INTEGER NOT NULL,
        reviewer_id VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE vote_index_state (
        built_at TIMESTAMP NOT NULL,
        n_votes BIGINT NOT NULL,        -- reviewer-named comparisons it was built from
        n_comparisons BIGINT NOT NULL,  -- all comparisons then
        n_pairs BIGINT NOT NULL,
        seconds DOUBLE NOT NULL
    )
    """,
)

_V4_PAIR_SCHOOL_VOTES: Final = (
    """
    CREATE TABLE pair_school_votes (
        fit_id VARCHAR NOT NULL,
        pair_id VARCHAR NOT NULL,
        w DOUBLE[] NOT NULL,            -- [pooled, school 0, school 1, ...] careful-weighted
        share_1 DOUBLE[] NOT NULL       -- the same schools' shares for response 1 (NULL: no vote)
    )
    """,
)

_V6_TRAFFIC: Final = (
    """
    CREATE TABLE traffic (
        traffic_id VARCHAR NOT NULL,
        id_given BOOLEAN NOT NULL,        -- false: derived from the row content
        row_hash VARCHAR NOT NULL,
        batch_id INTEGER NOT NULL,
        source_line BIGINT NOT NULL,
        created_at TIMESTAMP NOT NULL,    -- when the reply was served (UTC)
        prompt_id VARCHAR NOT NULL,       -- text_id of the prompt
        response_text_id VARCHAR NOT NULL,
        category VARCHAR,
        model VARCHAR,
        tags VARCHAR[],
        user_feedback VARCHAR,
        escalated BOOLEAN,
        conversation_id VARCHAR
    )
    """,
    """
    CREATE TABLE traffic_runs (
        run_id VARCHAR PRIMARY KEY,       -- the reward run that scored the traffic
        scored_at TIMESTAMP NOT NULL,
        heads VARCHAR[] NOT NULL,
        n_turns BIGINT NOT NULL,
        n_reference BIGINT NOT NULL,      -- training replies the kNN index holds
        n_calibration BIGINT NOT NULL,    -- held-out training replies giving the percentiles
        k INTEGER NOT NULL,
        distance_p99 DOUBLE NOT NULL,     -- 99th percentile of the held-out kNN distances
        school_rule VARCHAR,
        tag_model JSON                    -- the tag classifier's held-out accuracy per tag
    )
    """,
    """
    CREATE TABLE traffic_scores (
        run_id VARCHAR NOT NULL,
        traffic_id VARCHAR NOT NULL,
        head VARCHAR NOT NULL,
        score DOUBLE NOT NULL
    )
    """,
    """
    CREATE TABLE traffic_signals (
        run_id VARCHAR NOT NULL,
        traffic_id VARCHAR NOT NULL,      -- or a response_id for the training reference rows
        source VARCHAR NOT NULL,          -- 'traffic', 'reference' or 'calibration'
        category VARCHAR,
        knn_distance DOUBLE NOT NULL,
        knn_percentile DOUBLE NOT NULL,   -- among held-out training distances, 0-100
        school_spread DOUBLE,             -- sd of the school heads (or the distributional sd)
        contested BOOLEAN,                -- the schools would disagree on this reply
        scores DOUBLE[],                  -- per head, in traffic_runs.heads order
        projection FLOAT[],               -- a few principal components, for two-sample tests
        predicted_tags VARCHAR[]          -- from the tag classifier (for traffic without tags)
    )
    """,
)

_V8_WITHDRAWALS: Final = (
    # A comparison that is no longer current (deleted at its source, or replaced by a revised
    # version under the same id) moves here whole, so ``comparisons`` holds current judgments
    # only and every reader (model frame, vote index, training, export) needs no filter.
    # The columns after ``replaced_in_batch`` are those of ``comparisons``; rows are copied BY
    # NAME, so a migration that adds a column to ``comparisons`` must add it here too.
    """
    CREATE TABLE comparison_withdrawals (
        withdrawal_id BIGINT NOT NULL,    -- 1, 2, ... in the order of withdrawal
        withdrawn_at TIMESTAMP NOT NULL,  -- UTC
        reason VARCHAR NOT NULL,          -- 'deleted' (gone) or 'revised' (a newer version is
                                          -- current under the same comparison_id)
        source VARCHAR NOT NULL,          -- what asked for it, e.g. a Label Studio webhook event
        replaced_in_batch INTEGER,        -- 'revised': the ingest batch holding the new version
        comparison_id VARCHAR NOT NULL,
        id_given BOOLEAN NOT NULL,
        row_hash VARCHAR NOT NULL,
        batch_id INTEGER NOT NULL,
        source_line BIGINT NOT NULL,
        reviewer_id VARCHAR,
        has_reviewer BOOLEAN NOT NULL,
        pair_id VARCHAR NOT NULL,
        prompt_id VARCHAR NOT NULL,
        response_a_id VARCHAR NOT NULL,
        response_b_id VARCHAR NOT NULL,
        a_is_response_1 BOOLEAN NOT NULL,
        choice VARCHAR NOT NULL,
        outcome TINYINT NOT NULL,
        shown_first VARCHAR,
        first_shown TINYINT,
        strength DOUBLE,
        created_at TIMESTAMP,
        seconds_spent DOUBLE,
        category VARCHAR,
        guideline_version VARCHAR,
        batch VARCHAR,
        rationale VARCHAR,
        gold_choice VARCHAR,
        gold_outcome TINYINT
    )
    """,
)

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "raw comparisons, texts, reviewers, batches, quarantine", _V1),
    Migration(2, "public output tables: fits, estimates, weights, reward runs", _V2_OUTPUTS),
    Migration(
        3, "vote index: reviewer-named comparisons, integer-coded, in time order", _V3_VOTE_INDEX
    ),
    Migration(4, "per-pair votes by school, stored with each fit", _V4_PAIR_SCHOOL_VOTES),
    Migration(5, "what each reviewer's departures from the consensus favour",
              ("ALTER TABLE reviewer_estimates ADD COLUMN lean VARCHAR",)),
    Migration(6, "logged assistant turns (traffic), their scores and drift signals", _V6_TRAFFIC),
    Migration(7, "the spread of a reward run's deep ensemble, per scored turn", (
        # NULL for runs trained without an ensemble and for turns scored before it existed
        "ALTER TABLE traffic_signals ADD COLUMN ensemble_spread DOUBLE",
        # 99th percentile of the spread on held-out training replies (the drift report's bar)
        "ALTER TABLE traffic_runs ADD COLUMN ensemble_spread_p99 DOUBLE",
    )),
    Migration(8, "withdrawn and revised comparisons, kept whole", _V8_WITHDRAWALS),
    Migration(9, "each reviewer's expected agreement with the consensus (lapses and leans)",
              # NULL for fits made before it existed and for fits without the grid EM's beliefs
              ("ALTER TABLE reviewer_estimates ADD COLUMN agreement DOUBLE",)),
    Migration(10, "how far each reviewer's own votes move the odds of lapses against careful",
              # NULL for fits made before it existed: the audit then cannot say whose votes
              # cannot tell, and keeps its older verdicts
              ("ALTER TABLE reviewer_estimates ADD COLUMN lapse_evidence DOUBLE",)),
    Migration(11, "the credible interval of each reviewer's agreement with the consensus", (
        # NULL for fits made before it existed
        "ALTER TABLE reviewer_estimates ADD COLUMN agreement_low DOUBLE",
        "ALTER TABLE reviewer_estimates ADD COLUMN agreement_high DOUBLE",
    )),
    Migration(12, "what each reviewer is flagged for, and a label task's share of one label", (
        "ALTER TABLE reviewer_estimates ADD COLUMN flag_kinds VARCHAR",
        "ALTER TABLE reviewer_estimates ADD COLUMN top_label_share DOUBLE",
        # fits made before: what they were flagged for, read once from the reason's words
        # (the only place that reads them); their label share stays NULL
        """UPDATE reviewer_estimates SET flag_kinds = nullif(concat_ws(', ',
                CASE WHEN flag_reason LIKE '%votes reversed%' THEN 'reversed' END,
                CASE WHEN flag_reason LIKE '%lapse rate%' THEN 'lapses' END,
                CASE WHEN flag_reason LIKE '%strong position bias%'
                       OR flag_reason LIKE '%strong lean toward one label%' THEN 'lean' END), '')
            WHERE flagged""",
    )),
    Migration(13, "whether the fit reads a reviewer's 'equal' votes as a tie taste of their own",
              # NULL for fits made before it existed: the audit then keeps its tie verdicts
              ("ALTER TABLE reviewer_estimates ADD COLUMN tie_taste BOOLEAN",)),
)

LATEST_VERSION: Final = MIGRATIONS[-1].version
