"""The accuracy benchmarks as real processes on a tiny MovieLens-shaped folder: `accuracy_movielens.py` (its modules
under `benchmarks/accuracy/`) writes every system's rows under both protocols, and the scripts that share those
modules start."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
GENRES = ["unknown", "Action", "Comedy", "Drama", "Sci-Fi"]
WORDS = "star night river city war love robot king ghost road dream storm".split()
METRICS = {"auc", "mrr", "ndcg@5", "ndcg@10"}


def write_movielens(folder: Path, users: int = 24, movies: int = 60, ratings: int = 34) -> Path:
    """u.genre, u.item and u.data in the GroupLens layout; each user likes one genre (4-5 stars) and not the others."""
    folder.mkdir()
    (folder / "u.genre").write_text("".join(f"{name}|{i}\n" for i, name in enumerate(GENRES)), encoding="latin-1")
    rng = random.Random(0)
    genre_of = {}
    lines = []
    for movie in range(1, movies + 1):
        genre_of[movie] = 1 + movie % (len(GENRES) - 1)
        flags = "|".join("1" if i == genre_of[movie] else "0" for i in range(len(GENRES)))
        title = " ".join(rng.sample(WORDS, 2)).title()
        lines.append(f"{movie}|{title} ({1980 + movie % 20})|01-Jan-1995||http://example.org/{movie}|{flags}\n")
    (folder / "u.item").write_text("".join(lines), encoding="latin-1")
    lines = []
    for user in range(1, users + 1):
        liked = 1 + user % (len(GENRES) - 1)
        for k, movie in enumerate(rng.sample(range(1, movies + 1), ratings)):
            stars = rng.choice((4, 5)) if genre_of[movie] == liked else rng.choice((1, 2))
            lines.append(f"{user}\t{movie}\t{stars}\t{880000000 + 1000 * user + k}\n")
    (folder / "u.data").write_text("".join(lines))
    return folder


def run_benchmark(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "benchmarks/accuracy_movielens.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**ENV, "OMP_NUM_THREADS": "1"},
    )


def check_rows(systems: dict, learned: set[str]) -> None:
    for name, row in systems.items():
        assert set(row) == {"mean", "std", "seeds"}, name
        assert METRICS <= set(row["mean"]) and all(0 <= row["mean"][m] <= 1 for m in METRICS), name
        if name in learned:
            assert row["mean"]["steps"] >= 1 and row["mean"]["train_cpu_s"] >= 1.0, name


def test_accuracy_movielens_ratings_protocol_two_seeds_in_two_processes(tmp_path):
    data = write_movielens(tmp_path / "ml-tiny")
    out = tmp_path / "ratings.json"
    result = run_benchmark(
        "--data",
        str(data),
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--systems",
        "nrms,embsum+item-prior",
        "--budget-cpu-s",
        "1",
        "--batch-size",
        "8",
        "--json",
        str(out),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert {key: payload[key] for key in ("budget_cpu_s", "seeds", "schedule", "protocol")} == {
        "budget_cpu_s": 1.0,
        "seeds": [0, 1],
        "schedule": "anneal",
        "protocol": "ratings",
    }
    assert list(payload["systems"]) == [
        "random",
        "popularity",
        "item-mean-rating",
        "item-prior-fit",
        "tfidf",
        "nrms",
        "embsum+item-prior",
        "embsum+item-prior (content only)",
    ]
    check_rows(payload["systems"], learned={"nrms", "embsum+item-prior"})
    assert all(len(row["seeds"]) == 2 for row in payload["systems"].values())
    assert "ml-100k:test, protocol ratings" in result.stdout and "embsum+item-prior (content only)" in result.stdout


def test_accuracy_movielens_reads_protocol_with_a_cold_start_test(tmp_path):
    data = write_movielens(tmp_path / "ml-tiny")
    out = tmp_path / "reads.json"
    result = run_benchmark(
        "--data",
        str(data),
        "--seeds",
        "1",
        "--systems",
        "nrms",
        "--protocol",
        "reads",
        "--cold-films",
        "0.2",
        "--reads-per-user",
        "10",
        "--read-negatives",
        "4",
        "--budget-cpu-s",
        "1",
        "--batch-size",
        "8",
        "--json",
        str(out),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert (payload["protocol"], payload["reads_per_user"], payload["read_negatives"]) == ("reads", 10, 4)
    systems = payload["systems"]
    assert "item-mean-rating" not in systems  # no stars are read
    for name in ("random", "popularity", "item-prior-fit", "tfidf", "nrms"):
        assert name in systems and f"{name} (cold start)" in systems, name
    check_rows(systems, learned={"nrms"})
    assert systems["nrms"]["mean"]["num_impressions"] == 24  # one leave-last-out read per user


def test_the_scripts_sharing_the_accuracy_modules_import():
    code = "import accuracy_books, summary_quality; print(accuracy_books.train_nrms.__module__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO / "benchmarks", capture_output=True, text=True, env=ENV
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "accuracy.nrms"


def test_accuracy_books_merges_seeds_of_a_system_run_under_an_older_name(tmp_path):
    """`--merge --rename OLD=NEW`: a seed run under an older name joins the table with its late-fusion and cold rows;
    a rename that matches nothing is one line, exit 1."""

    def run_file(seed: int, system: str, auc: float) -> Path:
        row = {"auc": auc, "mrr": auc / 2, "ndcg@5": auc / 2, "ndcg@10": auc / 2}
        names = ["popularity", system, f"{system} + prior (late fusion)", f"{system} (cold start)"]
        systems = {name: {"mean": row, "std": dict.fromkeys(row, 0.0), "seeds": [row]} for name in names}
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps({"seeds": [seed], "budget_cpu_s": 1800, "systems": systems}), encoding="utf-8")
        return path

    first, second = run_file(0, "embsum", 0.80), run_file(1, "embsum+lambda1", 0.78)

    def merge(output: str, *extra: str) -> subprocess.CompletedProcess:
        command = ["--merge", str(first), str(second), "--json", str(tmp_path / output), *extra]
        return subprocess.run(
            [sys.executable, "accuracy_books.py", *command],
            cwd=REPO / "benchmarks",
            capture_output=True,
            text=True,
            env=ENV,
        )

    renamed = merge("merged.json", "--rename", "embsum+lambda1=embsum")
    assert renamed.returncode == 0, renamed.stderr[-3000:]
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["seeds"] == [0, 1] and merged["renamed"] == ["embsum+lambda1=embsum"]
    for name in ("embsum", "embsum + prior (late fusion)", "embsum (cold start)"):
        assert merged["systems"][name]["mean"]["auc"] == pytest.approx(0.79), name
    assert merge("plain.json").returncode == 0  # without the rename only the systems both files have
    assert list(json.loads((tmp_path / "plain.json").read_text())["systems"]) == ["popularity"]
    wrong = merge("wrong.json", "--rename", "embsum+lr1e-3=embsum")
    assert wrong.returncode == 1 and "no file has a system 'embsum+lr1e-3'" in wrong.stderr
    assert not (tmp_path / "wrong.json").exists()


def test_summary_quality_merges_one_seed_reports_into_the_mean_and_std_over_seeds(tmp_path):
    """`summary_quality.py --merge`: seeds trained as separate processes become one report (mean +- std over every
    seed, the baselines' per-seed rows kept); a report of another run or benchmark, or a repeated seed, is one line,
    exit 1."""

    def report(seed: int, rouge: float, gap: float, settings: str = "['summary_copy=True']") -> Path:
        options = {name: "None" for name in ("data", "test", "test_summaries", "load_models")}
        options.update(seeds=str(seed), set=settings, budget_cpu_s="1800.0", dev_users="500")
        run = {"rougeL": rouge, "specificity_gap": gap, "auc": 0.8 + seed / 100}
        systems = {
            "nearest": {"rougeL": 0.6, "rougeL_std": 0.0, "specificity_gap": 0.07 + seed / 100},
            "embsum": dict(run),
        }
        path = tmp_path / f"seed{seed}-{len(settings)}.json"
        body = {"options": options, "systems": systems, "embsum_runs": {"embsum": [run]}, "embsum_details": [{}]}
        path.write_text(json.dumps(body), encoding="utf-8")
        return path

    def merge(*paths: Path) -> subprocess.CompletedProcess:
        output = ["--json", str(tmp_path / "m.json")]
        command = [sys.executable, "summary_quality.py", "--merge", *map(str, paths), *output]
        return subprocess.run(command, cwd=REPO / "benchmarks", capture_output=True, text=True, env=ENV)

    first, second, third = report(0, 0.64, 0.10), report(1, 0.66, 0.12), report(2, 0.65, 0.14)
    merged_run = merge(first, second, third)
    assert merged_run.returncode == 0, merged_run.stderr[-3000:]
    merged = json.loads((tmp_path / "m.json").read_text())
    assert merged["options"]["seeds"] == "0,1,2" and len(merged["embsum_details"]) == 3
    embsum, nearest = merged["systems"]["embsum"], merged["systems"]["nearest"]
    assert embsum["rougeL"] == pytest.approx(0.65) and embsum["rougeL_std"] == pytest.approx(0.01)
    assert embsum["specificity_gap"] == pytest.approx(0.12) and embsum["specificity_gap_std"] == pytest.approx(0.02)
    assert nearest["specificity_gap"] == pytest.approx(0.08) and len(merged["baseline_runs"]["nearest"]) == 3
    (tmp_path / "m.json").unlink()
    other = merge(first, report(1, 0.7, 0.2, settings="['summary_copy=False']"))
    assert other.returncode == 1 and "has set=\"['summary_copy=False']\"" in other.stderr
    repeated = merge(first, first)
    assert repeated.returncode == 1 and "repeat seeds (0, 0)" in repeated.stderr
    (tmp_path / "accuracy.json").write_text(json.dumps({"seeds": [1], "systems": {}}), encoding="utf-8")
    foreign = merge(first, tmp_path / "accuracy.json")
    assert foreign.returncode == 1 and "accuracy.json is no summary_quality.py --json report" in foreign.stderr
    assert not (tmp_path / "m.json").exists()


def test_summary_quality_keyword_baseline_writes_the_words_profiles_pick_oldest_book_first(monkeypatch):
    """The book baseline `keywords`: history words scored by how often training profiles pick them when held."""
    import datasets

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from summary_quality import keyword_summaries

    texts = {
        "d": ("Dragons", "dragons guard the castle"),
        "b": ("Baking", "baking bread at home"),
        "m": ("Mystery", ""),
    }
    items = datasets.Dataset.from_list([dict(item_id=i, title=t, description=d) for i, (t, d) in texts.items()])
    book = {item: {"item_id": item} for item in texts}
    training = [[book["d"]], [book["b"]], [book["b"]], [book["m"]], [book["d"], book["b"]]]
    profiles = ["dragons", "baking and bread", "baking", "mystery", "baking and dragons"]
    profiles = [f"The reader is interested in {interests}." for interests in profiles]
    window = [book["b"], book["d"]]  # most recent first: the dragons book was read first
    # picked / held: baking 3/3, dragons 2/2, bread 1/2, castle and guard 0/2 ("the", "at": stop-words)
    written = keyword_summaries(items, [window], training, profiles, words=3)
    assert written["keywords"] == ["The reader is interested in dragons, baking and bread."]  # oldest book first
    assert written["keywords (best first)"] == ["The reader is interested in baking, dragons and bread."]
    # fewer words than slots: one slot; a word only ever written with a capital keeps it ("Dragons" did not)
    assert keyword_summaries(items, [[book["m"]]], training, profiles)["keywords"] == [
        "The reader is interested in Mystery."
    ]
