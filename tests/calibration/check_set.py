"""Validate the calibration set and print the per-criterion label distribution.

Usage: .venv/bin/python tests/calibration/check_set.py [DIR] [--markdown]
DIR defaults to tests/calibration/calls; tests/calibration/heldout is the held-out set.
Exits non-zero if any file is invalid.
"""
import sys
from collections import Counter
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CALLS = HERE / "calls"
STAGES = {"discovery", "demo", "pricing", "renewal", "other"}


def rubric_keys(name):
    data = yaml.safe_load((ROOT / "core" / "methodologies" / f"{name}.yaml").read_text())
    return [c["key"] for c in data["criteria"]], [f["key"] for f in data.get("fields", [])]


MEDDIC, MEDDIC_FIELDS = rubric_keys("meddic")
BANT, BANT_FIELDS = rubric_keys("bant")
FACT_FIELDS = MEDDIC_FIELDS + BANT_FIELDS
FACT_STATUSES = ("found", "ambiguous", "absent")
FACT_KEYS = {"status", "value", "terms", "negative", "note"}


def check_facts(facts):
    """Errors in a call's `facts:` section (see FACTS.md)."""
    if not isinstance(facts, dict):
        return ["facts must be a mapping"]
    errs = []
    if set(facts) != set(FACT_FIELDS):
        errs.append(f"facts keys {sorted(facts)} != {sorted(FACT_FIELDS)}")
    for k, f in facts.items():
        where = f"facts.{k}"
        if not isinstance(f, dict):
            errs.append(f"{where} must be a mapping with a status")
            continue
        if set(f) - FACT_KEYS:
            errs.append(f"{where}: unknown keys {sorted(set(f) - FACT_KEYS)}")
        status = f.get("status")
        if status not in FACT_STATUSES:
            errs.append(f"{where}.status must be one of {FACT_STATUSES} (got {status!r})")
            continue
        value = f.get("value")
        if status == "found":
            if not (isinstance(value, str) and value.strip()):
                errs.append(f"{where}: a found fact needs a non-empty value")
            terms = f.get("terms", [])
            if not isinstance(terms, list) or not all(isinstance(t, str) and t.strip()
                                                      for t in terms):
                errs.append(f"{where}.terms must be a list of non-empty strings")
            elif any(t.lower() not in value.lower() for t in terms if isinstance(value, str)
                     and not t.replace(".", "").replace(",", "").isdigit()):
                errs.append(f"{where}: every non-numeric term must appear in the value")
        else:
            if value is not None or f.get("terms") or f.get("negative"):
                errs.append(f"{where}: only a found fact has a value, terms or negative")
        if "negative" in f and f["negative"] is not True:
            errs.append(f"{where}.negative is either true or left out")
        if "note" in f and not isinstance(f["note"], str):
            errs.append(f"{where}.note must be a string")
    return errs


def check(path):
    errs = []
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        return [f"YAML error: {e}"], None
    if not isinstance(d, dict):
        return ["top level is not a mapping"], None
    for k in ("id", "title", "stage", "rep", "buyers", "turns", "labels", "facts"):
        if k not in d:
            errs.append(f"missing key {k!r}")
    if errs:
        return errs, None
    if d["id"] != path.stem:
        errs.append(f"id {d['id']!r} does not match file name")
    if not isinstance(d["title"], str) or not d["title"].strip():
        errs.append("title must be a non-empty string")
    if d["stage"] not in STAGES:
        errs.append(f"stage {d['stage']!r} not in {sorted(STAGES)}")
    rep = d["rep"]
    if not (isinstance(rep, dict) and rep.get("name") and rep.get("email")):
        errs.append("rep needs name and email")
    buyers = d["buyers"]
    if not isinstance(buyers, list) or not 1 <= len(buyers) <= 3:
        errs.append("buyers must be a list of 1-3 people")
        buyers = []
    names = set()
    for b in buyers:
        if not (isinstance(b, dict) and b.get("name") and b.get("email") and b.get("title")):
            errs.append(f"buyer needs name, email, title: {b!r}")
        else:
            names.add(b["name"])
    turns = d["turns"]
    if not isinstance(turns, list) or not 25 <= len(turns) <= 70:
        errs.append(f"turns must be a list of 25-70 items (got {len(turns) if isinstance(turns, list) else turns!r})")
        turns = turns if isinstance(turns, list) else []
    prev_start, prev_end = -1.0, 0.0
    spoken = set()
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or set(t) != {"speaker", "start", "end", "text"}:
            errs.append(f"turn {i}: needs exactly speaker, start, end, text")
            continue
        if t["speaker"] != "rep" and t["speaker"] not in names:
            errs.append(f"turn {i}: unknown speaker {t['speaker']!r}")
        spoken.add(t["speaker"])
        s, e = t["start"], t["end"]
        if not all(isinstance(x, (int, float)) for x in (s, e)):
            errs.append(f"turn {i}: start/end must be numbers")
            continue
        if not (s > prev_start and s >= prev_end - 1e-9 and e > s):
            errs.append(f"turn {i}: times not increasing ({s}-{e} after {prev_start}-{prev_end})")
        words = len(str(t["text"]).split())
        if not str(t["text"]).strip():
            errs.append(f"turn {i}: empty text")
        elif not 1.0 <= words / (e - s) <= 4.5 and e - s > 1.0:
            errs.append(f"turn {i}: unrealistic speech rate {words / (e - s):.1f} words/s")
        prev_start, prev_end = s, e
    if "rep" not in spoken or not spoken & names:
        errs.append("both the rep and at least one buyer must speak")
    labels = d["labels"]
    if not isinstance(labels, dict):
        return errs + ["labels must be a mapping"], None
    for k in ("meddic", "bant", "fields", "notes"):
        if k not in labels:
            errs.append(f"labels missing {k!r}")
    for name, keys in (("meddic", MEDDIC), ("bant", BANT)):
        block = labels.get(name) or {}
        if set(block) != set(keys):
            errs.append(f"labels.{name} keys {sorted(block)} != {sorted(keys)}")
        for k, v in block.items():
            if type(v) is not int or not 0 <= v <= 4:
                errs.append(f"labels.{name}.{k} must be an int 0-4 (got {v!r})")
    fields = labels.get("fields") or {}
    if set(fields) != set(MEDDIC_FIELDS):
        errs.append(f"labels.fields keys {sorted(fields)} != {sorted(MEDDIC_FIELDS)}")
    for k, v in fields.items():
        if v is not None and not (isinstance(v, str) and v.strip()):
            errs.append(f"labels.fields.{k} must be a non-empty string or null")
    if not isinstance(labels.get("notes"), str):
        errs.append("labels.notes must be a string")
    errs += check_facts(d["facts"])
    return errs, d


def main():
    folders = [Path(a) for a in sys.argv[1:] if not a.startswith("--")]
    files = sorted((folders[0] if folders else CALLS).glob("*.yaml"))
    if not files:
        print("no calls found", file=sys.stderr)
        return 1
    bad = 0
    dist = {("meddic", k): Counter() for k in MEDDIC}
    dist.update({("bant", k): Counter() for k in BANT})
    fields_set = Counter()
    facts = {k: Counter() for k in FACT_FIELDS}
    n_turns = 0
    stages = Counter()
    for f in files:
        errs, d = check(f)
        if errs:
            bad += 1
            for e in errs:
                print(f"{f.name}: {e}")
            continue
        n_turns += len(d["turns"])
        stages[d["stage"]] += 1
        for (m, k), c in dist.items():
            c[d["labels"][m][k]] += 1
        for k, v in d["labels"]["fields"].items():
            fields_set[k] += v is not None
        for k, f in d["facts"].items():
            facts[k][f["status"] + ("-negative" if f.get("negative") else "")] += 1
    md = "--markdown" in sys.argv
    print(f"{len(files)} calls, {bad} invalid, {n_turns} turns; stages: "
          + ", ".join(f"{s} {n}" for s, n in sorted(stages.items())))
    if md:
        print("\n| rubric | criterion | 0 | 1 | 2 | 3 | 4 | mean |\n|---|---|---|---|---|---|---|---|")
    else:
        print(f"\n{'rubric':7} {'criterion':18} " + " ".join(f"{i:>3}" for i in range(5)) + "  mean")
    for (m, k), c in dist.items():
        total = sum(c.values()) or 1
        mean = sum(v * n for v, n in c.items()) / total
        if md:
            print(f"| {m} | {k} | " + " | ".join(str(c[i]) for i in range(5)) + f" | {mean:.2f} |")
        else:
            print(f"{m:7} {k:18} " + " ".join(f"{c[i]:>3}" for i in range(5)) + f"  {mean:.2f}")
    print("\nfields filled (non-null): " + ", ".join(f"{k} {fields_set[k]}" for k in MEDDIC_FIELDS))
    columns = ("found", "found-negative", "ambiguous", "absent")
    if md:
        print("\n| fact | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    else:
        print(f"\n{'fact':18} " + " ".join(f"{c:>14}" for c in columns))
    for k, c in facts.items():
        if md:
            print(f"| {k} | " + " | ".join(str(c[col]) for col in columns) + " |")
        else:
            print(f"{k:18} " + " ".join(f"{c[col]:>14}" for col in columns))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
