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
        assert set(call.levels) == {"meddic", "bant"} and len(call.facts) == 11
        assert all(f.three_way for f in call.facts.values())


def test_calibrate_reports_agreement_and_repeatability(tmp_path):
    from cli import app

    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["calibrate", str(SET), "--out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["calls"] >= 30 and len(report["criteria"]) == 11
    assert len(report["facts"]) == 11
    # Floors under the deal-fact figures (README): found vs not and the 3-way status.
    assert report["facts_pooled"]["found_accuracy"] >= 0.68
    assert report["facts_pooled"]["status_accuracy"] >= 0.63
    assert "deal facts pooled" in result.output
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
    result, report = calibrate_set("heldout", tmp_path)
    assert report["calls"] >= 16 and len(report["criteria"]) == 11
    assert report["pooled"]["kappa_found"] >= 0.45
    assert report["pooled"]["kappa_levels"] >= 0.5
    facts = {f["field"]: f for f in report["facts"]}
    assert facts["economic_buyer"]["value_n"] >= 5 and facts["economic_buyer"]["person"]
    assert 0 <= facts["economic_buyer"]["value_match"] <= 1
    assert report["facts_pooled"]["found_accuracy"] >= 0.65
    assert "person-name match" in result.output


def test_the_second_held_out_set_measures_deal_facts(tmp_path):
    """40 calls by two more authors who saw only FACTS.md: hedges, negatives, third-person
    people, a rep who barely speaks. The deal-fact figures on calls nobody tuned on."""
    result, report = calibrate_set("heldout2", tmp_path)
    assert report["calls"] >= 40 and len(report["facts"]) == 11
    pooled = report["facts_pooled"]
    assert pooled["found_accuracy"] >= 0.7 and pooled["status_accuracy"] >= 0.65
    low, high = pooled["found_accuracy_ci"]
    assert low <= pooled["found_accuracy"] <= high
    assert pooled["person_n"] >= 20


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

    for folder in (SET / "calls", SET / "heldout", SET / "heldout2"):
        run = subprocess.run([sys.executable, str(SET / "check_set.py"), str(folder)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        assert " 0 invalid" in run.stdout


def test_values_are_compared_by_numbers_and_names_however_written():
    from core.calibration import terms_named
    from core.numbers import numbers_in

    assert {82, 200, 9000, 2600} <= numbers_in(
        "eighty-two percent, two hundred items, nine thousand students, twenty-six hundred")
    assert {40, 40000, 3000} <= numbers_in("$40k a month and 3,000 permits")
    assert 14000 in numbers_in("fourteen grand") and 0.87 in numbers_in("point eight seven")
    assert terms_named("OSHA fine ~$14K", ("14000",)) == 1.0
    assert terms_named("Marcus Lee, CFO", ("Marcus Lee",)) == 1.0
    assert terms_named("Lee", ("Marcus Lee",)) == 1.0  # the surname names him
    assert terms_named("the CFO", ("Marcus Lee",)) == 0.0
    assert terms_named("45 min/day; 23 supers", ("45", "23", "14000")) == 2 / 3


def calibrate_set(name: str, tmp_path):
    """`coachloop calibrate` on one labelled set: the CLI result and its JSON report."""
    from cli import app

    out = tmp_path / f"{name}.json"
    result = CliRunner().invoke(app, ["calibrate", str(SET / name), "--out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result, json.loads(out.read_text())
