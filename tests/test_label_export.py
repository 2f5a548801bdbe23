"""`coachloop label-export`: your own scored calls out for a reviewer, then `calibrate` on them."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from cli import app
from core.calibration import load_labelled_set
from tests.conftest import PLATFORM_CALLS, copy_calls, ingest_folder, run_pending

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def _scored_calls(tmp_path, count: int = 4) -> None:
    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS[:count]))
    run_pending()


def test_exported_calls_label_and_calibrate(sqlite_database, tmp_path):
    _scored_calls(tmp_path)
    out = tmp_path / "to-label"
    result = invoke("label-export", str(out), "--sample", "3")
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.yaml"))
    assert len(files) == 3 and "3 calls written" in result.output

    # Unlabelled, they load but give nothing to measure: a clear message, not a zero.
    calls = load_labelled_set(out)
    assert all(not levels for m in calls for levels in m.levels.values())
    unlabelled = invoke("calibrate", str(out), "--out", str(tmp_path / "r.json"))
    assert unlabelled.exit_code != 0 and "none of these calls has a label yet" in unlabelled.output

    document = yaml.safe_load(files[0].read_text())
    assert files[0].read_text().startswith("# A call exported for labelling")
    assert document["rep"]["email"] and document["buyers"]
    speakers = {t["speaker"] for t in document["turns"]}
    assert "rep" in speakers and speakers & {b["name"] for b in document["buyers"]}
    assert set(document["labels"]) >= {"meddic", "bant", "notes"}
    assert document["facts"]["economic_buyer"]["status"] == "?"
    assert set(document["labels"]["meddic"].values()) == {"?"}

    # A reviewer labels two criteria of one call; only those are measured.
    document["labels"]["meddic"]["economic_buyer"] = 3
    document["labels"]["bant"]["budget"] = 0
    document["facts"]["economic_buyer"] = {"status": "found", "value": "Someone, CFO",
                                           "terms": ["Someone"]}
    files[0].write_text(yaml.safe_dump(document, sort_keys=False))
    report_path = tmp_path / "report.json"
    measured = invoke("calibrate", str(out), "--out", str(report_path))
    assert measured.exit_code == 0, measured.output
    report = yaml.safe_load(report_path.read_text())
    assert {(c["methodology"], c["criterion"]) for c in report["criteria"]} == {
        ("meddic", "economic_buyer"), ("bant", "budget")}
    assert all(c["n"] == 1 for c in report["criteria"])
    assert [(f["field"], f["n"]) for f in report["facts"]] == [("economic_buyer", 1)]


def test_export_never_overwrites_a_reviewers_file_and_redacts_by_default(sqlite_database,
                                                                        tmp_path):
    folder = copy_calls(tmp_path / "calls", PLATFORM_CALLS[:2])
    vtt = next(p for p in folder.glob("*.vtt") if "Thanks for taking the call." in p.read_text())
    vtt.write_text(vtt.read_text().replace(
        "Thanks for taking the call.", "Thanks for taking the call, reach me on "
        "tyler.reed@acme.example or 415-555-0134.", 1))
    ingest_folder(folder)
    run_pending()
    out = tmp_path / "to-label"
    assert invoke("label-export", str(out), "--sample", "2").exit_code == 0
    first = sorted(out.glob("*.yaml"))[0]
    first.write_text(first.read_text().replace("economic_buyer: '?'", "economic_buyer: 2", 1))
    again = invoke("label-export", str(out), "--sample", "2")
    assert again.exit_code == 0 and "2 already there kept" in again.output
    assert "economic_buyer: 2" in first.read_text()
    spoken = "".join(t["text"] for path in out.glob("*.yaml")
                     for t in yaml.safe_load(path.read_text())["turns"])
    assert "reach me on [EMAIL_1] or [PHONE_1]" in spoken
    assert "tyler.reed@acme.example" not in spoken and "555-0134" not in spoken

    raw = invoke("label-export", str(tmp_path / "raw"), "--sample", "2", "--no-redact")
    assert raw.exit_code == 0 and "not redacted" in raw.output
    assert any("tyler.reed@acme.example" in p.read_text() for p in (tmp_path / "raw").iterdir())


def test_export_with_nothing_scored_says_so(sqlite_database, tmp_path):
    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS[:1]))  # ingested, not scored
    result = invoke("label-export", str(tmp_path / "out"))
    assert result.exit_code == 1 and "no scored calls" in result.output
