"""Demo task families: determinism, exact answers (recomputed independently), memory, make_task, CLI."""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from recorder.families import FAMILIES, get_family, make_task, parse_size
from recorder.families.celebrity_data import ARTISTS, CELEBRITIES
from recorder.families.log_data import CATEGORIES, CAUSES, CUSTOMER_EFFECTS, INTERNAL_EFFECTS
from recorder.families.review_data import TOPIC_PHRASES, VERDICTS
from recorder.tasks import load_task
from rlmine.errors import UserError

SIZE = 200 * 1024
ROOT = Path(__file__).resolve().parents[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _params(name: str, i: int) -> dict[str, object]:
    return get_family(name).make_instance_params(random.Random(i))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_same_seed_same_bytes_other_seed_other_bytes(name: str, tmp_path: Path) -> None:
    family = get_family(name)
    params = _params(name, 1)
    results = [
        family.write_context(tmp_path / f"{tag}.txt", params=params, seed=seed, size_bytes=SIZE)
        for tag, seed in (("a", 7), ("b", 7), ("c", 8))
    ]
    assert _sha(tmp_path / "a.txt") == _sha(tmp_path / "b.txt")
    assert results[0]["expected"] == results[1]["expected"]
    assert _sha(tmp_path / "a.txt") != _sha(tmp_path / "c.txt")
    size = (tmp_path / "a.txt").stat().st_size
    assert SIZE * 0.98 <= size <= SIZE * 1.05  # the requested size, give or take balancing lines


def _celebrity_counts(text: str) -> Counter[str]:
    """Mentions of each celebrity in any case or spacing: a plain scan of normalised lines."""
    counts: Counter[str] = Counter()
    for line in text.lower().splitlines():
        norm = " " + re.sub(r"[^a-z]+", " ", line) + " "
        for name in CELEBRITIES:
            counts[name] += norm.count(" " + name.lower() + " ")
    return counts


@pytest.mark.parametrize("seed", [1, 2])
def test_celebrities_answer_matches_an_independent_count(seed: int, tmp_path: Path) -> None:
    family = get_family("celebrities")
    path = tmp_path / "c.txt"
    result = family.write_context(path, params={"k": 6}, seed=seed, size_bytes=300 * 1024)
    text = path.read_text()
    counts = _celebrity_counts(text)
    ranked = [n for n, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    assert result["expected"] == ranked[:6]
    # a clear margin at the boundary, and spellings vary
    assert counts[ranked[5]] >= counts[ranked[6]] + 3
    assert "KEANU REEVES" in text.upper() and re.search(r"[A-Z][a-z]+  [A-Z][a-z]+", text)
    # the trap: the most frequent artist beats the most frequent celebrity
    top_artist = max(len(re.findall(re.escape(a), text, re.I)) for a in ARTISTS)
    assert top_artist > counts[ranked[0]]


def _prefix(template: str) -> str:
    return template.split("{")[0]


def _parse_log(text: str) -> list[tuple[str, str, str, str]]:
    rx = re.compile(r"^(\S+)T(\d\d:\d\d)\S+ (\w+)\s+(\S+) \[req=\w+\] (.*)$")
    out = []
    for line in text.splitlines():
        if m := rx.match(line):
            out.append((m.group(2), m.group(3), m.group(4), m.group(5)))
    return out


def test_incident_window_answer_matches_an_independent_count(tmp_path: Path) -> None:
    family = get_family("incident-logs")
    params = {"kind": "window", "date": "2024-05-02", "start": "10:00", "end": "12:30"}
    path = tmp_path / "l.log"
    result = family.write_context(path, params=params, seed=4, size_bytes=400 * 1024)
    customer = [_prefix(t) for t in CUSTOMER_EFFECTS]
    assert not any(
        c.startswith(_prefix(i)) or _prefix(i).startswith(c) for c in customer for i in INTERNAL_EFFECTS
    )
    entries = _parse_log(path.read_text())
    in_window = [e for e in entries if "10:00" <= e[0] < "12:30" and e[1] == "ERROR"]
    cf = Counter(svc for _, _, svc, msg in in_window if any(msg.startswith(c) for c in customer))
    errors = Counter(svc for _, _, svc, _ in in_window)
    all_day = Counter(
        svc for _, lvl, svc, msg in entries if lvl == "ERROR" and any(msg.startswith(c) for c in customer)
    )
    assert result["expected"] == cf.most_common(1)[0][0]
    # the traps: counting ERROR lines, or forgetting the window, names another service
    assert errors.most_common(1)[0][0] != result["expected"]
    assert all_day.most_common(1)[0][0] != result["expected"]


def test_incident_root_cause_answer_matches_an_independent_count(tmp_path: Path) -> None:
    family = get_family("incident-logs")
    params = {"kind": "root_cause", "date": "2024-05-02", "service": "auth-service"}
    path = tmp_path / "l.log"
    result = family.write_context(path, params=params, seed=5, size_bytes=300 * 1024)
    causes = {_prefix(t): cat for cat in CATEGORIES for t in CAUSES[cat]}

    def category(msg: str) -> str:
        found = {cat for prefix, cat in causes.items() if prefix in msg}
        assert len(found) == 1, msg
        return found.pop()

    entries = [e for e in _parse_log(path.read_text()) if e[1] == "ERROR"]
    mine = Counter(category(msg) for _, _, svc, msg in entries if svc == "auth-service")
    everyone = Counter(category(msg) for *_, msg in entries)
    assert result["expected"] == mine.most_common(1)[0][0]
    assert everyone.most_common(1)[0][0] != result["expected"]  # forgetting the service misleads


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "sentiment", "year": 2023, "month": 3, "month_name": "March", "sentiment": "negative"},
        {
            "kind": "topic",
            "year": 2024,
            "month": 11,
            "month_name": "November",
            "topic": "delivery",
            "topic_desc": "the delivery or shipping",
        },
    ],
)
def test_reviews_answer_matches_an_independent_count(params: dict[str, object], tmp_path: Path) -> None:
    family = get_family("reviews-aggregate")
    path = tmp_path / "r.jsonl"
    result = family.write_context(path, params=params, seed=3, size_bytes=SIZE)
    verdict_of = {s: sentiment for sentiment, sentences in VERDICTS.items() for s in sentences}
    topic_of = {s: t for t, by in TOPIC_PHRASES.items() for sentences in by.values() for s in sentences}
    records = [json.loads(line) for line in path.read_text().splitlines()]
    prefix = f"{params['year']}-{params['month']:02d}"
    month = [r for r in records if r["date"].startswith(prefix)]
    count = 0
    for r in month:
        sentences = re.findall(r"[^.!]+[.!]", r["text"])
        sentences = [s.strip() for s in sentences]
        if params["kind"] == "sentiment":
            verdicts = [verdict_of[s] for s in sentences if s in verdict_of]
            assert len(verdicts) == 1, r["text"]
            count += verdicts[0] == params["sentiment"]
        else:
            count += any(topic_of.get(s) == params["topic"] for s in sentences)
    assert result["expected"] == count > 0


def test_bad_params_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="k"):
        get_family("celebrities").write_context(tmp_path / "x", params={}, seed=1, size_bytes=SIZE)
    with pytest.raises(UserError, match="service"):
        get_family("incident-logs").write_context(
            tmp_path / "x",
            params={"kind": "root_cause", "date": "2024-01-01", "service": "nope"},
            seed=1,
            size_bytes=SIZE,
        )
    with pytest.raises(UserError) as info:
        get_family("nope")
    assert "unknown task family 'nope'" in info.value.one_line() and "celebrities" in info.value.one_line()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50MB", 50 * 1024**2),
        ("1.5 GB", int(1.5 * 1024**3)),
        ("300kb", 300 * 1024),
        ("123456", 123456),
        ("2KiB", 2048),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["-5MB", "lots", "5TB", ""])
def test_parse_size_rejects_bad_input(text: str) -> None:
    with pytest.raises(UserError):
        parse_size(text)


def test_make_task_writes_a_loadable_task_with_splits(tmp_path: Path) -> None:
    task_file = make_task("incident-logs", tmp_path / "t", size_bytes=100 * 1024, instances=5, seed=3)
    task = load_task(task_file)
    assert [i.split for i in task.instances] == ["train"] * 3 + ["validation", "test"]
    assert task.family == "incident-logs" and task.checker == "exact"
    for inst in task.instances:
        assert inst.context_path(task).stat().st_size >= 100 * 1024
        assert inst.expected
        assert "customer-facing" in inst.question_text(task) or "root-cause" in inst.question_text(task)
    assert len({json.dumps(i.params, sort_keys=True) for i in task.instances}) == 5
    again = make_task("incident-logs", tmp_path / "u", size_bytes=100 * 1024, instances=5, seed=3)
    assert task_file.read_text() == again.read_text()  # same seed, same task
    assert _sha(tmp_path / "t/contexts/test-000.log") == _sha(tmp_path / "u/contexts/test-000.log")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size_bytes": 10 * 1024}, "outside 100KB..1GB"),
        ({"size_bytes": 2 * 1024**3}, "outside 100KB..1GB"),
        ({"instances": 0}, "instances"),
    ],
)
def test_make_task_rejects_bad_sizes_and_counts(kwargs: dict[str, int], message: str, tmp_path: Path) -> None:
    args = {"size_bytes": 100 * 1024, "instances": 2, "seed": 1} | kwargs
    with pytest.raises(UserError, match=message):
        make_task("celebrities", tmp_path, size_bytes=args["size_bytes"], instances=args["instances"], seed=1)


def test_make_task_rejects_an_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot write to"):
        make_task("celebrities", blocker / "out", size_bytes=100 * 1024, instances=1, seed=1)


def _cli() -> typer.Typer:
    import rlmine.cli.families  # noqa: F401  (adds list and make to the tasks group)
    from rlmine.cli.tasks import tasks_app

    app = typer.Typer()
    app.add_typer(tasks_app, name="tasks")
    return app


def test_cli_tasks_list_json() -> None:
    result = CliRunner().invoke(_cli(), ["tasks", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == ["celebrities", "incident-logs", "reviews-aggregate"]
    assert all(r["description"] for r in rows)


def test_cli_tasks_make_writes_the_task_and_says_what_next(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = [
        "tasks",
        "make",
        "reviews-aggregate",
        "--size",
        "100KB",
        "--instances",
        "3",
        "--seed",
        "2",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    assert str(out / "task.yaml") in result.output and "rlmine record" in result.output
    assert len(load_task(out / "task.yaml").instances) == 3


def _categories(task_file: Path, split: str) -> list[tuple[str, ...]]:
    fam = get_family("reviews-aggregate")
    return [fam.question_category(i.params) for i in load_task(task_file).instances_in(split)]


def test_cli_tasks_make_covered_asks_only_questions_train_asked(tmp_path: Path) -> None:
    # seed 11's free draw asks validation and test about delivery, which no train instance does
    def make(out: str, *flags: str) -> Path:
        args = ["tasks", "make", "reviews-aggregate", "--size", "100KB", "--instances", "25", "--seed", "11"]
        result = CliRunner().invoke(_cli(), [*args, "--out", str(tmp_path / out), *flags])
        assert result.exit_code == 0, result.output
        return tmp_path / out / "task.yaml"

    free, covered, again = make("free"), make("covered", "--covered"), make("again", "--covered")
    seen = set(_categories(free, "train"))
    assert ("topic", "delivery") not in seen
    assert ("topic", "delivery") in _categories(free, "validation") + _categories(free, "test")
    assert _categories(covered, "train") == _categories(free, "train")  # train is drawn as before
    for split in ("validation", "test"):
        asked = _categories(covered, split)
        assert set(asked) <= seen, split
        assert [c[0] for c in asked] == [c[0] for c in _categories(free, split)]  # same mix of kinds
    assert covered.read_text() == again.read_text()  # same seed, same task


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tasks", "make", "nope"], "unknown task family"),
        (["tasks", "make", "celebrities", "--size", "-1MB"], "negative"),
        (["tasks", "make", "celebrities", "--size", "5GB"], "outside 100KB..1GB"),
    ],
)
def test_cli_tasks_make_errors_are_user_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), [*args, "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, UserError)
    assert message in result.exception.one_line()


_PEAK_RSS = textwrap.dedent(
    """
    import random, sys
    from pathlib import Path
    from recorder.families import get_family
    family = get_family(sys.argv[1])
    params = family.make_instance_params(random.Random(0))
    family.write_context(Path(sys.argv[2]), params=params, seed=1, size_bytes=200 * 1024 * 1024)
    # VmHWM, not ru_maxrss: ru_maxrss survives exec and would count the forking pytest.
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    print(int(hwm.split()[1]))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_200mb_context_stays_under_300mb_rss(name: str, tmp_path: Path) -> None:
    out = tmp_path / "big"
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, name, str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stdout.strip()) / 1024  # VmHWM is in kB
    assert out.stat().st_size >= 200 * 1024 * 1024
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
