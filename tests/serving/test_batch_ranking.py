"""`recommend_all`: every user of a store ranked to JSON Lines parts; equal to `recommend`, resumable, and never
reusing parts computed from other stores or settings."""

import json

import pytest
import torch
from datasets import load_dataset

from embsum_hf import EmbSumModel
from embsum_hf.modeling_embsum import poly_relevance
from embsum_hf.serving import FaissPrefilter, encode_items, encode_users, recommend, recommend_all

from ..conftest import tiny_config


@pytest.fixture(scope="module")
def stores(tmp_path_factory, tokenizer, processor, items):
    folder = tmp_path_factory.mktemp("stores")
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_mode="start")).eval()
    item_store = encode_items(model, processor, items, folder / "items", shard_size=16, progress=False)
    users = [(f"U{n}", items[n : n + 1 + n % 5]) for n in range(7)] + [("empty", [])]
    user_store = encode_users(model, processor, users, folder / "users", shard_size=3, progress=False)
    return model, users, user_store, item_store


def read_parts(folder):
    rows = load_dataset("json", data_files=sorted(str(p) for p in folder.glob("part-*.jsonl")), split="train")
    return rows.to_list()


def assert_top_k(rows, expected, user_store, item_store):
    """`rows` hold each user's top-k as `expected` does (scores to 1e-5); near-tied items of a random model may swap
    between blockings, so the ids are checked through their own exact scores."""
    assert [row["user_id"] for row in rows] == user_store.ids
    scores = torch.tensor([row["scores"] for row in rows])
    torch.testing.assert_close(scores, expected.scores, atol=1e-5, rtol=1e-5)
    full = poly_relevance(user_store.embeddings.float(), item_store.embeddings.float(), item_store.keys.float())
    listed = torch.stack([item_store.positions(row["item_ids"]) for row in rows])
    torch.testing.assert_close(full.gather(1, listed), scores, atol=1e-5, rtol=1e-5)


def test_every_user_ranked_as_recommend_ranks_it(tmp_path, stores):
    _, users, user_store, item_store = stores
    output = recommend_all(user_store, item_store, tmp_path / "recs", k=4, progress=False)
    manifest = json.loads((output / "recommendations.json").read_text())
    assert manifest["complete"] and manifest["parts"] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]

    assert user_store.ids == [user_id for user_id, _ in users]
    assert_top_k(read_parts(output), recommend(user_store, item_store, k=4), user_store, item_store)


def test_rerun_computes_only_the_missing_parts(tmp_path, stores):
    _, _, user_store, item_store = stores
    output = recommend_all(user_store, item_store, tmp_path / "recs", k=4, progress=False)
    texts = {path.name: path.read_text() for path in output.glob("part-*.jsonl")}
    # what a run killed after two of its three parts leaves
    manifest = json.loads((output / "recommendations.json").read_text())
    (output / "recommendations.json").write_text(json.dumps({**manifest, "complete": False, "parts": []}))
    (output / "part-00001.jsonl").unlink()
    kept = {name: (output / name).stat().st_mtime_ns for name in ("part-00000.jsonl", "part-00002.jsonl")}

    recommend_all(user_store, item_store, output, k=4, progress=False)
    assert {name: (output / name).stat().st_mtime_ns for name in kept} == kept  # not recomputed
    assert {path.name: path.read_text() for path in output.glob("part-*.jsonl")} == texts
    assert json.loads((output / "recommendations.json").read_text())["complete"]


def test_other_settings_or_store_contents_recompute_everything(tmp_path, stores, processor, items):
    model, users, user_store, item_store = stores
    output = recommend_all(user_store, item_store, tmp_path / "recs", k=4, progress=False)

    recommend_all(user_store, item_store, output, k=2, progress=False)
    assert all(len(row["item_ids"]) == 2 for row in read_parts(output))

    # the same user ids and model, new histories: the parts must follow the new embeddings
    changed = [(user_id, items[30:33]) for user_id, _ in users]
    new_users = encode_users(model, processor, changed, tmp_path / "new-users", shard_size=3, progress=False)
    assert new_users.ids == user_store.ids and new_users.content_digest() != user_store.content_digest()
    recommend_all(new_users, item_store, output, k=2, progress=False)
    assert_top_k(read_parts(output), recommend(new_users, item_store, k=2), new_users, item_store)


def test_faiss_prefilter_job_equals_prefiltered_recommend(tmp_path, stores):
    _, _, user_store, item_store = stores
    prefilter = FaissPrefilter.from_store(item_store, nlist=4, nprobe=2, num_candidates=12)
    output = recommend_all(user_store, item_store, tmp_path / "recs", k=4, prefilter=prefilter, progress=False)
    expected = recommend(user_store, item_store, k=4, prefilter=prefilter)
    assert_top_k(read_parts(output), expected, user_store, item_store)
    recorded = json.loads((output / "recommendations.json").read_text())["prefilter"]
    assert recorded == {"faiss_ivf": {"nlist": 4, "nprobe": 2, "num_candidates": 12, "seed": 0}}


def test_excluded_history_never_recommended_and_part_of_the_key(tmp_path, stores):
    _, users, user_store, item_store = stores
    seen = {user_id: [item["item_id"] for item in history] for user_id, history in users}
    output = recommend_all(user_store, item_store, tmp_path / "recs", k=4, exclude=seen, progress=False)
    rows = read_parts(output)
    assert all(not set(row["item_ids"]) & set(seen[row["user_id"]]) for row in rows)
    assert_top_k(rows, recommend(user_store, item_store, k=4, exclude=seen), user_store, item_store)

    recommend_all(user_store, item_store, output, k=4, progress=False)  # no exclusion now: recomputed
    assert_top_k(read_parts(output), recommend(user_store, item_store, k=4), user_store, item_store)
