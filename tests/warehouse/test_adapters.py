"""Adapters for public data sets: counts on the real files, mappings, bad rows, detection."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dissensus.warehouse.adapters import ADAPTERS, STAGED_SCHEMA, Adapter
from dissensus.warehouse.adapters.detect import detect_format
from dissensus.warehouse.adapters.hh_rlhf import split_transcripts
from dissensus.warehouse.errors import InputFileError, UnknownFormatError
from dissensus.warehouse.ids import pair_id_for_texts

DATA = Path(__file__).parents[2].parent / "shared" / "data"
UKP = DATA / "ukpconvarg1_convincingness"
HH = DATA / "hh_rlhf_harmless_base_test"
SNOW = DATA / "snow2008_mturk"
BIRDS = DATA / "bluebirds"
TEXTS = ("prompt", "response_a", "response_b")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data set not found at {path} (the shared data folder is not mounted)")
    return path


def _frame(chunks: Iterator[pa.Table]) -> pl.DataFrame:
    tables = list(chunks)
    assert tables, "the adapter yielded no chunk"
    for table in tables:
        assert table.schema.equals(STAGED_SCHEMA)
    return pl.concat([pl.from_arrow(table) for table in tables])


def _read(name: str, path: Path, chunk_rows: int = 100_000) -> pl.DataFrame:
    return _frame(ADAPTERS[name].read(path, chunk_rows))


def _counts(frame: pl.DataFrame, column: str) -> dict[str | None, int]:
    return dict(frame[column].value_counts().iter_rows())


# --- UKPConvArg1 ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ukp() -> pl.DataFrame:
    return _read("ukpconvarg1", _need(UKP), chunk_rows=30_000)


def test_ukp_counts(ukp: pl.DataFrame) -> None:
    assert ukp.height == 84_445
    assert ukp["_error"].null_count() == ukp.height
    assert ukp["reviewer_id"].n_unique() == 3_815
    assert ukp["comparison_id"].n_unique() == 84_445
    assert ukp["prompt"].n_unique() == 32
    assert ukp["category"].n_unique() == 32
    assert set(ukp["shown_first"]) == {"a"}


def test_ukp_pairs(ukp: pl.DataFrame) -> None:
    """16,927 source pairs; verbatim double posts merge some into 16,479 content pairs."""
    pairs = ukp.select(
        "category",
        pl.col("comparison_id").str.split(":").list.get(1).alias("source_pair"),
        "prompt",
        "response_a",
        "response_b",
    ).unique()
    assert pairs.height == 16_927
    assert pairs.select("category", "source_pair").n_unique() == 16_927
    ids = {pair_id_for_texts(*row) for row in pairs.select(TEXTS).iter_rows()}
    assert len(ids) == 16_479
    assert pairs.filter(pl.col("response_a") == pl.col("response_b")).height == 15


def test_ukp_mapping(ukp: pl.DataFrame) -> None:
    assert _counts(ukp, "choice") == {"a": 32_849, "b": 32_491, "tie": 19_105}
    first = ukp.row(0, named=True)
    assert first["_line"] == 2
    assert first["_source"].endswith("judgments.csv.gz")
    assert first["reviewer_id"] == "A3ESHM4QQW5NH6"
    assert first["choice"] == "b"
    assert first["comparison_id"] == "3SBEHTYCWOF25MVIOQLS4WFNV44IYA:arg219298_arg219206"
    assert first["prompt"] == (
        "Debate: Ban Plastic Water Bottles\nStance: No Bad For the Economy\n"
        "Which argument is more convincing?"
    )
    assert first["response_b"].startswith("Americans spend billions on bottled water")
    assert first["created_at"] == "2016-01-31T16:59:52+00:00"
    assert float(first["seconds_spent"]) == pytest.approx(393 / 3)  # 3 pairs in the assignment
    assert first["batch"] == "36QZ6V1589P7W7HGTZDFHTJDL3PSUR"
    assert first["rationale"].startswith("A2 is talking about bottled water")
    assert json.loads(first["_reviewer_attributes"]) == {
        "stance@ban-plastic-water-bottles_no-bad-for-the-economy": "none"
    }
    assert ukp["_reviewer_attributes"].null_count() == 40_539
    assert ukp["gold_choice"].null_count() == ukp.height  # MACE labels are not inputs


def test_ukp_raw_is_the_source_line(ukp: pl.DataFrame) -> None:
    with gzip.open(UKP / "judgments.csv.gz", "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    sample = ukp.gather_every(997)
    for line, raw in sample.select("_line", "_raw").iter_rows():
        assert lines[line - 1] == raw
    assert ukp["_line"].to_list() == list(range(2, 84_447))


def _write_ukp(folder: Path, judgments: list[str]) -> None:
    folder.mkdir()
    header = (
        "topic,pair_id,worker_id,hit_id,assignment_id,accept_time,submit_time,value,reason,"
        "worker_stance,turk_rank,turk_competence,hit_comment"
    )
    (folder / "judgments.csv").write_text("\n".join([header, *judgments]) + "\n")
    (folder / "pairs.csv").write_text(
        "topic,pair_id,arg1_id,arg2_id,gold_label,in_strict,strict_label\n"
        "t,x_y,x,y,a1,1,a1\n"
        "t,y_z,y,z,,0,\n"
    )
    (folder / "arguments.csv").write_text(
        "topic,arg_id,debate_title,debate_url,debate_description,stance,author,vote_up,"
        "vote_down,text,rank_score\n"
        "t,x,Tea or coffee?,u,,Tea,me,1,0,Tea is calm.<br/>And warm.,0.1\n"
        't,y,Tea or coffee?,u,,Tea,me,1,0,"Tea, hot.",0.2\n'
        "t,z,Tea or coffee?,u,,Tea,me,1,0,Tea is cheap.,0.3\n"
    )


def test_ukp_bad_rows_are_yielded_with_reasons(tmp_path: Path) -> None:
    start, end = "2016-01-31 10:00:00.0 UTC", "2016-01-31 10:01:00.0 UTC"
    folder = tmp_path / "ukp"
    _write_ukp(
        folder,
        [
            f't,x_y,W1,H1,A1,{start},{end},a2,"because, reasons",same,1,0.5,',
            f"t,y_z,W1,H1,A1,{start},{end},A3,why,,1,0.5,",
            f"t,q_r,W2,H1,A2,{start},{end},a1,why,,1,0.5,",
            f"t,x_y,W3,H1,A3,yesterday,{end},equal,why,,1,0.5,",
            f"t,x_y,,H1,A4,{end},{start},a1,why,,1,0.5,",
        ],
    )
    frame = _read("ukpconvarg1", folder / "judgments.csv")
    assert frame.height == 5
    assert frame["_line"].to_list() == [2, 3, 4, 5, 6]
    good, bad_value, bad_pair, bad_time, bad_worker = frame.iter_rows(named=True)
    assert good["_error"] is None
    assert good["choice"] == "b"
    assert good["response_a"] == "Tea is calm.\nAnd warm."
    assert good["response_b"] == "Tea, hot."
    assert good["seconds_spent"] == "30.0"  # 60 s over the 2 pairs of assignment A1
    assert good["_raw"] == f't,x_y,W1,H1,A1,{start},{end},a2,"because, reasons",same,1,0.5,'
    assert json.loads(good["_reviewer_attributes"]) == {"stance@t": "same"}
    assert "value is 'A3'" in bad_value["_error"] and "a1, a2 or equal" in bad_value["_error"]
    assert "pair_id 'q_r'" in bad_pair["_error"] and "pairs.csv" in bad_pair["_error"]
    assert "accept_time is 'yesterday'" in bad_time["_error"]
    assert "worker_id is empty" in bad_worker["_error"]
    assert "submit_time is before accept_time" in bad_worker["_error"]
    assert bad_worker["seconds_spent"] is None


def test_ukp_missing_sibling_is_a_file_error(tmp_path: Path) -> None:
    folder = tmp_path / "ukp"
    _write_ukp(folder, [])
    (folder / "arguments.csv").unlink()
    with pytest.raises(InputFileError, match=r"arguments\.csv") as caught:
        list(ADAPTERS["ukpconvarg1"].read(folder, 10))
    assert caught.value.fix


# --- HH-RLHF ----------------------------------------------------------------------------------


def test_hh_counts_and_mapping() -> None:
    frame = _read("hh-rlhf", _need(HH) / "harmless-base_test.jsonl.gz", chunk_rows=1_000)
    assert frame.height == 2_312
    assert frame["_error"].null_count() == 2_312
    assert set(frame["choice"]) == {"a"}
    assert frame["reviewer_id"].null_count() == 2_312
    assert frame["comparison_id"][0] == "hh-rlhf:harmless-base_test.jsonl.gz:1"
    assert frame["comparison_id"].n_unique() == 2_312
    assert frame["prompt"].str.starts_with("Human: ").all()
    assert frame["prompt"].str.ends_with("\n\nAssistant:").all()
    assert (frame["response_a"] == "").sum() == 4  # empty chosen replies stay empty
    first = frame.row(0, named=True)
    record = json.loads(first["_raw"])
    assert first["prompt"] + " " + first["response_a"] == record["chosen"].lstrip("\n")
    assert first["prompt"] + " " + first["response_b"] == record["rejected"].lstrip("\n")


def test_hh_split_transcripts() -> None:
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and?\n\nAssistant: Sure, here."
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and?\n\nAssistant: Sorry."
    assert split_transcripts(chosen, rejected) == (
        "Human: hi\n\nAssistant: hello\n\nHuman: and?\n\nAssistant:",
        "Sure, here.",
        "Sorry.",
    )


def test_hh_bad_lines_are_yielded_with_reasons(tmp_path: Path) -> None:
    good = {"chosen": "\n\nHuman: q\n\nAssistant: yes", "rejected": "\n\nHuman: q\n\nAssistant: no"}
    lines = [
        json.dumps(good),
        "{not json",
        "[1, 2]",
        json.dumps({"chosen": "x"}),
        json.dumps({"chosen": good["chosen"], "rejected": good["chosen"]}),
        "",
        json.dumps({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c"}),
    ]
    path = tmp_path / "pairs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    frame = _read("hh-rlhf", path)
    assert frame["_line"].to_list() == [1, 2, 3, 4, 5, 7]  # the blank line holds no row
    errors = frame["_error"].to_list()
    assert errors[0] is None
    assert errors[1].startswith("not valid JSON")
    assert "expected a JSON object, found a JSON array" in errors[2]
    assert "missing or non-string rejected" in errors[3]
    assert "identical" in errors[4]
    assert "share no prefix" in errors[5]
    assert frame["_raw"][1] == "{not json"
    assert frame["prompt"][0] == "Human: q\n\nAssistant:"


# --- Snow et al. 2008 RTE and temporal ordering, bluebirds ----------------------------------------


def test_snow_rte_counts_and_mapping() -> None:
    frame = _read("snow2008-rte", _need(SNOW))
    assert frame.height == 8_000
    assert frame["_error"].null_count() == 8_000
    assert frame["reviewer_id"].n_unique() == 164
    assert frame["prompt"].n_unique() == 800
    assert frame["comparison_id"].n_unique() == 8_000
    assert _counts(frame, "choice") == {"a": 4_581, "b": 3_419}
    assert _counts(frame, "gold_choice") == {"a": 4_000, "b": 4_000}
    first = frame.row(0, named=True)
    assert first["_raw"] == "89KZPYXSTGTJ0CZY2Y1ZB28YQ9GBT88Z2W1KDYTZ\tA19IBSKBTABMR3\t266\t1\t1"
    assert first["prompt"].startswith("Text: Three of its five permanent members")
    assert "\nHypothesis: France, Russia and China" in first["prompt"]
    assert first["response_a"] == "Yes, the text entails the hypothesis."
    assert first["choice"] == first["gold_choice"] == "a"
    assert first["shown_first"] is None


def test_snow_rte_bad_rows(tmp_path: Path) -> None:
    folder = tmp_path / "snow"
    folder.mkdir()
    (folder / "rte.standardized.tsv").write_text(
        "!amt_annotation_ids\t!amt_worker_ids\torig_id\tresponse\tgold\n"
        "A\tW1\t1\t0\t1\n"
        "A\tW1\t2\tyes\t1\n"
        "A\tW2\t9\t1\t0\n"
    )
    (folder / "rte_texts.tsv").write_text(
        'id\tvalue\ttask\ttext\thypothesis\n1\tTRUE\tQA\tA "cat" sat.\tA cat sat.\n'
        "2\tTRUE\tIE\tB.\tB.\n"
    )
    frame = _read("snow2008-rte", folder / "rte.standardized.tsv")
    assert frame.height == 3
    assert frame["_error"][0] is None
    assert frame["choice"][0] == "b" and frame["gold_choice"][0] == "a"
    assert frame["category"][0] == "RTE: question answering"
    assert "response is 'yes'" in frame["_error"][1]
    assert "orig_id '9' is not an id in rte_texts.tsv" in frame["_error"][2]


def test_snow_temp_counts_and_mapping() -> None:
    frame = _read("snow2008-temp", _need(SNOW) / "temp.standardized.tsv", chunk_rows=1_000)
    assert frame.height == 4_620
    assert frame["_error"].null_count() == 4_620
    assert frame["reviewer_id"].n_unique() == 76
    assert frame["prompt"].n_unique() == 462
    assert frame["comparison_id"].n_unique() == 4_620
    assert frame["batch"].n_unique() == 470
    assert _counts(frame, "choice") == {"a": 2_178, "b": 2_442}
    assert _counts(frame, "gold_choice") == {"a": 2_590, "b": 2_030}
    assert _counts(frame, "category") == {"TempEval: event order": 4_620}
    first = frame.row(0, named=True)
    assert first["_line"] == 2
    assert first["_raw"] == "1Z0ZWAY8NYBZJWY7FX302YKE055D9GPWYZ0PBZ40\tA2HTGQE4AACVRV\t42_0\t1\t1"
    assert first["prompt"] == (
        "Event pair 42_0 (TempEval): did the first event happen before or after the second?"
    )
    assert first["response_a"] == "The first event happened before the second."
    assert first["response_b"] == "The first event happened after the second."
    assert first["comparison_id"] == "snow2008-temp:1Z0ZWAY8NYBZJWY7FX302YKE055D9GPWYZ0PBZ40:42_0"
    assert first["batch"] == "1Z0ZWAY8NYBZJWY7FX302YKE055D9GPWYZ0PBZ40"
    assert first["reviewer_id"] == "A2HTGQE4AACVRV"
    assert first["choice"] == first["gold_choice"] == "a"
    assert first["shown_first"] is None


def test_snow_temp_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "temp.standardized.tsv"
    path.write_text(
        "!amt_annotation_ids\t!amt_worker_ids\torig_id\tresponse\tgold\n"
        "A\tW1\t1_0\t2\t1\n"
        "A\tW1\t1_1\tbefore\t1\n"
        "A\t \t1_2\t1\t0\n"
        "A\tW2\t\t1\t\n"
        "A\tW2\t1_3\t1\t\n"
    )
    frame = _read("snow2008-temp", tmp_path)
    assert frame.height == 5
    assert frame["_line"].to_list() == [2, 3, 4, 5, 6]
    assert frame["_error"][0] is None
    assert frame["choice"][0] == "b" and frame["gold_choice"][0] == "a"
    assert "response is 'before'; expected 1 (before) or 2 (after)" in frame["_error"][1]
    assert "!amt_worker_ids is empty" in frame["_error"][2]
    assert "gold is '0'; expected 1 (before), 2 (after) or empty" in frame["_error"][2]
    assert frame["_error"][3].startswith("orig_id is empty")
    assert frame["prompt"][3] is None
    assert frame["_error"][4] is None and frame["gold_choice"][4] is None
    with pytest.raises(InputFileError, match="temporal ordering label file"):
        list(ADAPTERS["snow2008-temp"].read(tmp_path / "absent", 10))


def test_bluebirds_counts_and_mapping() -> None:
    frame = _read("bluebirds", _need(BIRDS))
    assert frame.height == 4_212
    assert frame["_error"].null_count() == 4_212
    assert frame["reviewer_id"].n_unique() == 39
    assert frame["prompt"].n_unique() == 108
    assert frame["comparison_id"].n_unique() == 4_212
    assert _counts(frame, "gold_choice") == {"a": 48 * 39, "b": 60 * 39}
    assert _counts(frame, "choice") == {"a": 1_597, "b": 2_615}
    first = frame.row(0, named=True)
    assert first["_raw"] == "39,11573,1"
    assert first["comparison_id"] == "bluebirds:39:11573"
    assert "image 11573" in first["prompt"] and "Indigo Bunting" in first["prompt"]


def test_bluebirds_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("worker_id,image_id,label\n1,10,1\n2,10,maybe\n,11,0\n")
    (tmp_path / "gt.csv").write_text("image_id,gt_label\n10,0\n")
    frame = _read("bluebirds", tmp_path)
    assert frame.height == 3
    assert frame["_error"][0] is None and frame["gold_choice"][0] == "b"
    assert "label is 'maybe'" in frame["_error"][1]
    assert "worker_id is empty" in frame["_error"][2]
    assert frame["gold_choice"][2] is None


# --- registry and detection -------------------------------------------------------------------


def test_registry() -> None:
    assert list(ADAPTERS) == ["ukpconvarg1", "hh-rlhf", "snow2008-rte", "snow2008-temp",
                              "bluebirds", "label-studio", "argilla"]
    for name, adapter in ADAPTERS.items():
        assert isinstance(adapter, Adapter) and adapter.name == name and adapter.description
    with pytest.raises(AttributeError):
        ADAPTERS["hh-rlhf"].name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="chunk_rows"):
        list(ADAPTERS["bluebirds"].read(_need(BIRDS), 0))


@pytest.mark.parametrize(
    ("relative", "name", "why"),
    [
        ("ukpconvarg1_convincingness", "ukpconvarg1", "UKPConvArg1"),
        ("ukpconvarg1_convincingness/judgments.csv.gz", "ukpconvarg1", "worker_id"),
        ("hh_rlhf_harmless_base_test", "hh-rlhf", "HH-RLHF"),
        ("hh_rlhf_harmless_base_test/harmless-base_test.jsonl.gz", "hh-rlhf", "chosen"),
        ("snow2008_mturk", "snow2008-rte", "RTE"),
        ("snow2008_mturk/rte.standardized.tsv", "snow2008-rte", "!amt_worker_ids"),
        ("snow2008_mturk/temp.standardized.tsv", "snow2008-temp", "temporal ordering"),
        ("bluebirds", "bluebirds", "gt.csv"),
        ("bluebirds/labels.csv", "bluebirds", "worker_id"),
    ],
)
def test_detect_real_data(relative: str, name: str, why: str) -> None:
    found, reason = detect_format(_need(DATA / relative))
    assert found == name
    assert why in reason


def test_detect_snow_temp_folder_unless_rte_is_there(tmp_path: Path) -> None:
    source = _need(SNOW) / "temp.standardized.tsv"
    (tmp_path / "temp.standardized.tsv").write_bytes(source.read_bytes())
    found, reason = detect_format(tmp_path)
    assert found == "snow2008-temp"
    assert "temp.standardized.tsv in the folder" in reason
    header = (SNOW / "rte.standardized.tsv").read_text().splitlines()[0]
    (tmp_path / "rte.standardized.tsv").write_text(header + "\n")
    assert detect_format(tmp_path)[0] == "snow2008-rte"  # RTE is tried first: the folder is RTE
    assert detect_format(tmp_path / "temp.standardized.tsv")[0] == "snow2008-temp"
    (tmp_path / "renamed.tsv").write_bytes(source.read_bytes())
    assert detect_format(tmp_path / "renamed.tsv")[0] == "csv"  # the name must start with temp


def test_detect_canonical_formats(tmp_path: Path) -> None:
    row = {"reviewer_id": "r", "choice": "a", "prompt": "p", "response_a": "x", "response_b": "y"}
    (tmp_path / "a.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "b.ndjson.gz").write_bytes(gzip.compress(json.dumps(row).encode()))
    (tmp_path / "c.csv").write_text("reviewer_id,choice\nr,a\n")
    (tmp_path / "d.TSV.gz").write_bytes(gzip.compress(b"reviewer_id\tchoice\nr\ta\n"))
    pq.write_table(pa.table({"choice": ["a"]}), tmp_path / "e.parquet")
    pq.write_table(pa.table({"choice": ["a"]}), tmp_path / "f_no_extension")
    (tmp_path / "g_no_extension").write_text(json.dumps(row) + "\n")
    (tmp_path / "h.txt").write_text("reviewer_id,choice,prompt\nr,a,p\n")
    expected = {
        "a.jsonl": ("jsonl", ".jsonl"),
        "b.ndjson.gz": ("jsonl", ".ndjson.gz"),
        "c.csv": ("csv", ".csv"),
        "d.TSV.gz": ("csv", ".tsv.gz"),
        "e.parquet": ("parquet", ".parquet"),
        "f_no_extension": ("parquet", "PAR1"),
        "g_no_extension": ("jsonl", "JSON object"),
        "h.txt": ("csv", "choice"),
    }
    for file, (name, why) in expected.items():
        found, reason = detect_format(tmp_path / file)
        assert found == name, file
        assert why in reason, (file, reason)


def test_detect_unknown_says_what_to_do(tmp_path: Path) -> None:
    odd = tmp_path / "notes.docx"
    odd.write_bytes(b"PK\x03\x04 not a table")
    with pytest.raises(UnknownFormatError) as caught:
        detect_format(odd)
    message = str(caught.value)
    assert "notes.docx" in message
    assert ".jsonl" in message and ".csv" in message and "Parquet" in message
    assert "ukpconvarg1" in message and "hh-rlhf" in message
    assert caught.value.fix
    empty_folder = tmp_path / "folder"
    empty_folder.mkdir()
    with pytest.raises(UnknownFormatError, match="no adapter recognises this folder"):
        detect_format(empty_folder)
    with pytest.raises(InputFileError, match="does not exist"):
        detect_format(tmp_path / "missing.jsonl")
