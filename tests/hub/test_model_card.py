"""Model cards: metadata that parses, a model-index naming dataset and split, and regeneration that updates in
place."""

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from embsum_hf.hub import AUTO_END, AUTO_START, load_card_inputs, write_model_card
from embsum_hf.hub.model_card import CARD_DATA_NAME

MODEL_CARDS = Path(__file__).resolve().parents[2] / "model_cards"
# README.md and embsum_card.json as the previous release (main c27640d) wrote them for the tiny test model, with a note
# of the user's below the generated part
PREVIOUS_RELEASE = Path(__file__).resolve().parent / "previous_release"
METRICS = {
    "auc": 0.6321,
    "mrr": 0.3012,
    "ndcg@5": 0.2899,
    "ndcg@10": 0.3555,
    "num_impressions": 120,
    "num_skipped_one_class": 3,
}


@pytest.fixture()
def folder(tmp_path, model, processor) -> Path:
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    return tmp_path


def results_by_key(card: ModelCard) -> dict:
    return {
        (r.task_type, r.dataset_name, r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results
    }


def test_card_metadata_parses_and_names_dataset_and_split(folder):
    card = write_model_card(
        folder,
        metrics=METRICS,
        summary_rouge={"rouge1": 0.41, "rouge2": 0.2, "rougeL": 0.38, "num_summaries": 50},
        dataset_name="MIND-small",
        dataset_split="MINDsmall_dev:test(90%)",
        base_model="google-t5/t5-small",
        training_args={"learning_rate": 1e-4, "num_train_epochs": 3},
        teacher="mistralai/Mixtral-8x22B-Instruct-v0.1",
        repo_id="org/embsum-mind",
    )
    loaded = ModelCard.load(folder / "README.md")
    assert loaded.data.to_dict() == card.data.to_dict()
    assert loaded.text == card.text

    data = loaded.data
    assert data.library_name == "transformers"
    assert {"recommendation", "embsum", "t5"} <= set(data.tags)
    assert data.base_model == "google-t5/t5-small"
    assert data.model_name == "org/embsum-mind" and loaded.text.count("\n# org/embsum-mind\n") == 1  # the repo id
    results = results_by_key(loaded)
    assert results[("text-ranking", "MIND-small", "MINDsmall_dev:test(90%)", "auc")] == 63.21
    assert results[("summarization", "MIND-small", "MINDsmall_dev:test(90%)", "rougeL")] == 38.0
    assert len(results) == 7  # num_* counts are not metrics
    assert data.metrics == ["auc", "mrr", "ndcg@5", "ndcg@10", "rouge1", "rouge2", "rougeL"]
    index = data.to_dict()["model-index"][0]["results"][0]
    assert index["dataset"]["name"] == "MIND-small" and index["dataset"]["split"] == "MINDsmall_dev:test(90%)"

    text = loaded.text
    assert AUTO_START in text and AUTO_END in text
    for snippet in (
        'pipeline(model="org/embsum-mind", trust_remote_code=True)',
        'EmbSumModel.from_pretrained("org/embsum-mind")',
        "embsum train",
        "embsum evaluate",
        "embsum encode-items",
        "mistralai/Mixtral-8x22B-Instruct-v0.1",
        "| learning_rate | 0.0001 |",
        "| MIND-small | MINDsmall_dev:test(90%) | AUC | 63.21 |",
        "## Limitations",
    ):
        assert snippet in text, snippet


def test_regeneration_keeps_user_text_and_merges_metrics(folder):
    write_model_card(
        folder,
        metrics=METRICS,
        dataset_name="MIND-small",
        dataset_split="MINDsmall_dev:test(90%)",
        teacher="heuristic",
        training_args={"learning_rate": 1e-4},
    )
    readme = folder / "README.md"
    note = "## Notes from the authors\n\nTrained on two CPU cores; do not expect miracles.\n"
    readme.write_text(readme.read_text() + "\n" + note)
    card = ModelCard.load(readme)
    card.data.tags.append("my-own-tag")
    card.save(readme)

    # a new evaluation: the dev split, plus an improved test AUC; nothing else restated
    write_model_card(folder, metrics={"auc": 0.65}, dataset_name="MIND-small", dataset_split="MINDsmall_dev:dev(10%)")
    write_model_card(
        folder, metrics={"auc": 0.6412}, dataset_name="MIND-small", dataset_split="MINDsmall_dev:test(90%)"
    )
    updated = ModelCard.load(readme)
    assert note in updated.text
    assert updated.text.count(AUTO_START) == 1
    assert "my-own-tag" in updated.data.tags
    results = results_by_key(updated)
    assert results[("text-ranking", "MIND-small", "MINDsmall_dev:test(90%)", "auc")] == 64.12
    assert results[("text-ranking", "MIND-small", "MINDsmall_dev:test(90%)", "mrr")] == 30.12
    assert results[("text-ranking", "MIND-small", "MINDsmall_dev:dev(10%)", "auc")] == 65.0
    assert "| MIND-small | MINDsmall_dev:test(90%) | AUC | 64.12 |" in updated.text
    assert "| MIND-small | MINDsmall_dev:dev(10%) | AUC | 65.0 |" in updated.text
    assert "| learning_rate | 0.0001 |" in updated.text and "| Summary teacher | heuristic |" in updated.text


def test_a_hand_written_readme_is_kept_below_the_generated_part(folder):
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# My recommender\n\nHand-written.\n")
    card = write_model_card(folder)
    assert card.data.license == "mit"
    assert card.text.index(AUTO_END) < card.text.index("# My recommender\n\nHand-written.")


def test_metrics_must_name_their_split_and_be_fractions(folder):
    with pytest.raises(ValueError, match="dataset_split"):
        write_model_card(folder, metrics={"auc": 0.6}, dataset_name="MIND-small")
    with pytest.raises(ValueError, match="fraction"):
        write_model_card(folder, metrics={"auc": 63.2}, dataset_name="MIND-small", dataset_split="test")
    with pytest.raises(ValueError, match="unknown metric 'accuracy'"):
        write_model_card(folder, metrics={"accuracy": 0.6}, dataset_name="MIND-small", dataset_split="test")


@pytest.mark.parametrize("name", ["embsum-mind", "embsum-goodreads"])
def test_ready_made_card_inputs_render(folder, name):
    inputs = load_card_inputs(MODEL_CARDS / f"{name}.yaml")
    card = write_model_card(folder, **inputs, metrics={"auc": 0.6, "mrr": 0.3}, teacher="heuristic")
    assert card.data.model_name == f"org/{name}"
    assert all(result.dataset_split == inputs["dataset_split"] for result in card.data.eval_results)
    # the first example is the usage example; no widget metadata (the Hub's widget runs no custom code)
    assert "widget" not in card.data.to_dict() and inputs["widget"][0]["inputs"]["candidates"][0]["title"] in card.text
    assert ModelCard.load(folder / "README.md").data.to_dict() == card.data.to_dict()


def test_unknown_card_inputs_are_named(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text("repo_id: org/x\ndataset: MIND\n")
    with pytest.raises(ValueError, match=r"unknown card input\(s\) \['dataset'\]"):
        load_card_inputs(path)


def test_license_follows_the_data_terms_or_the_flag(folder):
    from embsum_hf.hub import EmbSumModelCardData

    mind = EmbSumModelCardData(data_domain="mind", dataset_name="MIND-small")
    card = write_model_card(folder, mind)
    assert (card.data.license, card.data.license_name) == ("other", "microsoft-research-license-mind")
    assert "non-commercial research use only" in card.text and "@inproceedings{wu2020mind" in card.text
    assert card.data.base_model is None and "T5 trained from scratch" in card.text  # base_model=None: from scratch
    assert EmbSumModelCardData(data_domain="custom").resolved().hub_metadata().license == "unknown"  # no terms known
    flagged = EmbSumModelCardData(data_domain="mind", license="cc-by-nc-4.0")
    card = write_model_card(folder, flagged)
    assert card.data.license == "cc-by-nc-4.0" and card.data.license_name is None


@pytest.mark.parametrize("name", ["mind", "goodreads"])
def test_ready_made_card_inputs_agree_with_the_recipes_they_describe(name):
    """`embsum push` refuses card inputs that contradict the run: the shipped ones match the shipped recipes."""
    import yaml

    inputs = load_card_inputs(MODEL_CARDS / f"embsum-{name}.yaml")
    recipe = yaml.safe_load((MODEL_CARDS.parent / "examples" / "configs" / f"{name}_t5_small.yaml").read_text())
    assert (inputs["dataset_name"], inputs["base_model"]) == (recipe["dataset_name"], recipe["backbone"])
    assert inputs.get("teacher", recipe["teacher"]) == recipe["teacher"] and "license" not in inputs


def test_metadata_declares_only_what_the_hub_can_run(folder):
    """No `pipeline_tag` (`pipeline("text-ranking")` is an unknown task; the Hub's widget runs no custom code) and no
    widget; the card says how to run the model instead; an older card's `pipeline_tag`, widget and `embsum:` YAML are
    dropped (the facts live in `embsum_card.json`)."""
    from transformers import pipeline

    with pytest.raises(KeyError, match="Unknown task"):
        pipeline("text-ranking", model=str(folder))
    (folder / "README.md").write_text(
        '---\npipeline_tag: text-ranking\nwidget:\n- example_title: x\n  text: \'{"history": ["a"], '
        '"candidates": ["b"]}\'\nembsum:\n  base_model: google-t5/t5-small\n  teacher: heuristic\n---\nOld card.\n'
    )
    card = write_model_card(folder, repo_id="org/tiny")
    metadata = card.data.to_dict()
    assert not {"pipeline_tag", "widget", "embsum"} & set(metadata), metadata
    assert len(card.content.split("---")[1]) < 1000  # the YAML is the Hub's metadata, not the body again
    assert "trust_remote_code=True" in card.text and "## How to run it" in card.text
    assert "declares no `pipeline_tag`" in card.text and '"candidates": [\n        "b"' in card.text  # old widget
    facts = json.loads((folder / CARD_DATA_NAME).read_text())
    assert (facts["base_model"], facts["teacher"], facts["repo_id"]) == ("google-t5/t5-small", "heuristic", "org/tiny")


def test_title_is_the_repo_id_or_else_the_folder_name(folder):
    card = write_model_card(folder)
    assert card.data.model_name == folder.name and f"\n# {folder.name}\n" in card.text
    assert "repo_id" not in json.loads((folder / CARD_DATA_NAME).read_text())  # a folder name is not recorded
    card = write_model_card(folder, repo_id="org/embsum-news")
    assert card.data.model_name == "org/embsum-news" and "\n# org/embsum-news\n" in card.text
    assert "hf download org/embsum-news --local-dir embsum-news" in card.text
    assert write_model_card(folder).data.model_name == "org/embsum-news"  # kept by a regeneration


@pytest.mark.parametrize("summary_rows", [0, 120])
def test_a_run_without_summaries_says_so(folder, summary_rows):
    card = write_model_card(
        folder,
        teacher=None if summary_rows == 0 else "heuristic",
        summary_rows=summary_rows,
        training_args={"learning_rate": 1e-3},
    )
    untrained = "trained **on clicks alone** (no teacher summaries)"
    if summary_rows == 0:
        assert untrained in card.text and "Loss: `L = L_NCE` (trained on clicks alone)" in card.text
        assert "L_sum" not in card.text and "LLM" not in card.text and "written by" not in card.text
    else:
        assert untrained not in card.text and "Loss: `L = L_NCE + 1.0 * L_sum`" in card.text
        assert "120 training rows with a summary written by heuristic" in card.text


def test_a_card_of_the_previous_release_regenerates_unchanged(folder):
    """The facts and text a previous release recorded are read by today's fields: a regeneration that states nothing
    new writes the same README and facts, byte for byte; a new result updates it and keeps the user's note."""
    from embsum_hf.hub import EmbSumModelCardData

    for name in ("README.md", CARD_DATA_NAME):
        shutil.copyfile(PREVIOUS_RELEASE / name, folder / name)
    write_model_card(folder)
    for name in ("README.md", CARD_DATA_NAME):
        assert (folder / name).read_text() == (PREVIOUS_RELEASE / name).read_text(), name
    facts = EmbSumModelCardData.from_card(folder)
    assert (facts.base_model, facts.license, facts.training_args["max_steps"]) == ("google-t5/t5-small", "other", 4)
    card = write_model_card(folder, metrics={"auc": 0.7}, dataset_split="MINDsmall_dev:test(90%)")
    results = results_by_key(card)
    assert results[("text-ranking", "MIND-small", "MINDsmall_dev:test(90%)", "auc")] == 70.0
    assert results[("text-ranking", "MIND-small", "MINDsmall_dev:test(90%)", "mrr")] == 30.0  # kept
    assert results[("summarization", "MIND-small", "MINDsmall_dev:test(90%)", "rougeL")] == 38.0
    assert "Kept across regenerations." in card.text and card.data.model_name == "org/embsum-previous"
    assert card.data.license_name == "microsoft-research-license-mind"


def test_the_card_data_is_the_template_context(folder):
    """Every variable the card template reads is a key of `EmbSumModelCardData.to_dict()`, and every field of the card
    data is one under its own name: no table renames facts between the card data, the template and the card inputs."""
    import jinja2
    import jinja2.meta
    from huggingface_hub import ModelCard

    from embsum_hf.hub import EmbSumModelCardData
    from embsum_hf.hub.card_data import CARD_FIELDS
    from embsum_hf.hub.model_card import TEMPLATE_PATH, _folder_details

    data = EmbSumModelCardData(
        teacher="heuristic",
        dataset_name="MIND-small",
        training_args={"learning_rate": 0.002},
        summary_rows=3,
        license_terms="research only",
        framework_versions={"PyTorch": "9"},
    )
    data.model_details = _folder_details(folder)
    context = data.to_dict()
    template = jinja2.Environment().parse(TEMPLATE_PATH.read_text())
    assert jinja2.meta.find_undeclared_variables(template) - {"card_data"} <= set(context)
    assert set(CARD_FIELDS) <= set(context)
    for name in ("teacher", "dataset_name", "training_args", "summary_rows", "license_terms", "framework_versions"):
        assert context[name] == getattr(data, name), name
    text = ModelCard.from_template(data, template_path=str(TEMPLATE_PATH)).text
    assert "| learning_rate | 0.002 |" in text and "(research only)" in text and "PyTorch 9." in text
    assert "from 3 training rows with a summary written by heuristic" in text
