"""`coachloop calibrate` on the hand-labelled development set (tests/calibration)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from core.calibration import cohen_kappa, load_labelled_set

SET = Path(__file__).resolve().parent / "calibration"


def test_kappa_matches_hand_computed_values():
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0], [0, 1]) == 0.5
    assert cohen_kappa([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], list(range(5)), "quadratic") == 1.0
    assert cohen_kappa([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], list(range(5)), "quadratic") == -1.0
    assert cohen_kappa([1, 1], [1, 1], [0, 1]) is None  # undefined: no variation at all


def test_the_set_loads_with_roles_and_labels():
    calls = load_labelled_set(SET)
    assert len(calls) >= 30
    for call in calls:
        assert {s.role.value for s in call.view.segments} == {"rep", "buyer"}
        assert set(call.levels) == {"meddic", "bant"} and len(call.fields) == 7


def test_calibrate_reports_agreement_and_repeatability(tmp_path):
    from cli import app

    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["calibrate", str(SET), "--out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["calls"] >= 30 and len(report["criteria"]) == 11
    assert len(report["fields"]) == 7
    assert report["pooled"]["run_to_run"] == 1.0  # the built-in scorer is deterministic
    for row in report["criteria"]:
        assert row["n"] == report["calls"] and 0 <= row["exact"] <= row["within_one"] <= 1
    # A floor under the built-in scorer's agreement with the labels (README has the figures):
    # falling below it means a change made scoring worse.
    assert report["pooled"]["kappa_found"] >= 0.45
    assert "pooled over every criterion" in result.output
    low, high = report["pooled"]["kappa_found_ci"]
    assert low <= report["pooled"]["kappa_found"] <= high and high - low > 0.05
    assert "95% CI" in result.output


def test_the_held_out_set_stays_near_the_development_figures(tmp_path):
    """The held-out calls were written by another author who never saw the scorer; its
    agreement there is the honest figure for new calls (README)."""
    from cli import app

    out = tmp_path / "heldout.json"
    result = CliRunner().invoke(app, ["calibrate", str(SET / "heldout"), "--out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["calls"] >= 16 and len(report["criteria"]) == 11
    assert report["pooled"]["kappa_found"] >= 0.45
    assert report["pooled"]["kappa_levels"] >= 0.5
    # How often a field value names what the reviewer's value names (a person, a number).
    fields = {f["field"]: f for f in report["fields"]}
    assert fields["economic_buyer"]["key_terms_n"] >= 5
    assert 0 <= fields["economic_buyer"]["key_terms"] <= 1
    assert "names the reviewer's terms" in result.output


def test_calibrate_an_llm_endpoint(tls, tmp_path, monkeypatch):
    """The same report for the LLM scorer, here against the OpenAI-compatible emulator's
    keyword answerer (its figures mean nothing; the path is what is tested)."""
    from cli import app
    from core.settings import get_settings
    from sandbox.openai_compat import OpenAICompatSandbox
    from sandbox.server import serve

    box = OpenAICompatSandbox(models=("coach-1",))
    server = serve(box.create_app(), tls)
    try:
        for key, value in {"SCORING__SCORER": "llm", "LLM__BASE_URL": f"{server.url}/v1",
                           "LLM__API_KEY": box.api_key, "LLM__MODEL": "coach-1",
                           "CA_BUNDLE": str(tls.ca_path)}.items():
            monkeypatch.setenv(f"COACHLOOP_{key}", value)
        get_settings.cache_clear()
        out = tmp_path / "llm.json"
        few = tmp_path / "few"
        (few / "calls").mkdir(parents=True)
        for path in sorted((SET / "calls").glob("*.yaml"))[:3]:
            (few / "calls" / path.name).write_text(path.read_text())
        result = CliRunner().invoke(app, ["calibrate", str(few), "--scorer", "llm", "--out",
                                          str(out)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        report = json.loads(out.read_text())
        assert report["scorer"] == "llm" and report["calls"] == 3
        assert box.completions == 3 * 2 * 2  # 3 calls × MEDDIC and BANT × two passes
    finally:
        server.stop()


def test_both_labelled_sets_pass_their_checker():
    import subprocess
    import sys

    for folder in (SET / "calls", SET / "heldout"):
        run = subprocess.run([sys.executable, str(SET / "check_set.py"), str(folder)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        assert " 0 invalid" in run.stdout


def test_key_terms_read_numbers_spoken_or_written_and_names():
    from core.calibration import _key_terms, _numbers, _words_and_numbers

    assert {"82", "200", "9000", "2600"} <= _numbers(
        "eighty-two percent, two hundred items, nine thousand students, twenty-six hundred")
    assert {"40", "40000", "3000"} <= _numbers("$40k a month and 3,000 permits")
    # The reviewer's "Marcus Lee, CFO": the surname and the title are checkable; the first
    # word of a clause is not taken for a name.
    assert _key_terms("Marcus Lee, CFO (signs anything over $50K)") == {"lee", "cfo", "50",
                                                                        "50000"}
    ours = _words_and_numbers("Marcus Lee, our CFO.")
    assert _key_terms("Marcus Lee, CFO") & ours
