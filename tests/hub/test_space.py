"""The Gradio Space `embsum space` writes: its files, its app running as a real process on 127.0.0.1 without embsum_hf,
driven by gradio_client and by a real headless Chromium (Selenium), its answers equal to the package's `recommend`,
`generate_summaries` and `explain`; and its upload (`embsum push --space`) to a local Hub."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from huggingface_hub import HfApi, SpaceCard

from embsum_hf import EmbSumModel
from embsum_hf.cli import main
from embsum_hf.data import make_synthetic_mind
from embsum_hf.hub.space import push_space
from embsum_hf.serving import EmbeddingStore, explain, recommend
from embsum_hf.serving.explain import generate_summaries
from tests.hub.test_push import FakeHub, fake_hub  # noqa: F401 (a local Hub, and its fixture)

logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
# where the browser test leaves its screenshot and the latency log (outputs/ is git-ignored)
ARTIFACTS = Path(os.environ.get("EMBSUM_TEST_ARTIFACTS", REPO / "outputs" / "test-artifacts"))
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,2200",
)  # fmt: skip
# runs the app as a Space runs it, with `import embsum_hf` made impossible: the app must not need the package
RUN_APP = "import runpy, sys; sys.modules['embsum_hf'] = None; runpy.run_path('app.py', run_name='__main__')"
K = 5  # what the gradio_client test asks for
PAGE_K = 10  # the page's default


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Outbound(BaseHTTPRequestHandler):
    """A proxy that forwards nothing: it records each request a process sends through it (`CONNECT host:443` for
    HTTPS, an absolute URL for HTTP) and refuses it."""

    requests: list[str] = []

    def _record(self):
        Outbound.requests.append(f"{self.command} {self.path}")
        self.send_error(403, "no network in tests")

    do_CONNECT = do_GET = do_POST = do_HEAD = _record  # noqa: N815 (http.server's naming)

    def log_message(self, *args):
        pass


def start_app(folder: Path, hf_home: Path, proxy: str | None = None) -> tuple[subprocess.Popen, str, float]:
    """`python app.py` in `folder` on a free loopback port, logging to `hf_home/app.log` (all but loopback traffic
    through `proxy`, if given); returns the process, its URL and its start-up seconds (to the first page served)."""
    port = free_port()
    # no HF_HUB_OFFLINE: the app itself must keep off the network (a proxy sees what it would send)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "HF_HUB_OFFLINE")}
    env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        HF_HOME=str(hf_home),
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    if proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env[name] = env[name.lower()] = proxy
        env["no_proxy"] = env["NO_PROXY"]
    log_path = hf_home / "app.log"
    log = open(log_path, "w")
    started = time.perf_counter()
    command = [sys.executable, "-c", RUN_APP]
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = started + 300
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the app exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return process, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError(f"the app did not answer within 300 s:\n{log_path.read_text()[-3000:]}")


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def space_model(config) -> EmbSumModel:
    torch.manual_seed(0)
    return EmbSumModel(config).eval()


@pytest.fixture(scope="module")
def catalogue(items) -> list[dict]:
    return items  # the conftest's 40 news items of four topics


@pytest.fixture(scope="module")
def space(tmp_path_factory, space_model, processor, catalogue) -> Path:
    """What `embsum space` writes for a saved model folder and a JSON-lines items file."""
    root = tmp_path_factory.mktemp("space")
    space_model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    items_file = root / "items.jsonl"
    items_file.write_text("".join(json.dumps(item) + "\n" for item in catalogue))
    argv = [
        "space",
        "--model",
        str(root / "model"),
        "--items",
        str(items_file),
        "--output",
        str(root / "space"),
        "--model-repo",
        "org/embsum-tiny",
        "--title",
        "Tiny EmbSum",
        "--no-progress",
    ]
    assert main(argv) == 0
    return root / "space"


@pytest.fixture(scope="module")
def outbound():
    """A recording proxy for the app process (see `Outbound`); yields its URL. Runs for the whole module."""
    Outbound.requests.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Outbound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


APP_LOGS: dict[str, Path] = {}  # the app's URL -> its log (stdout and stderr)


@pytest.fixture(scope="module")
def app(space, tmp_path_factory, outbound):
    hf_home = tmp_path_factory.mktemp("hf_home")
    process, url, startup = start_app(space, hf_home, proxy=outbound)
    APP_LOGS[url] = hf_home / "app.log"
    logger.info("tiny Space: the app answered %.2f s after its process started", startup)
    yield url
    stop_app(process)


def history_items(catalogue: list[dict], rows: list[int]) -> list[dict]:
    return [catalogue[row] for row in rows]


def expected_ranking(model, processor, catalogue, store, history: list[dict], k: int = K) -> tuple[list, list]:
    """The package's answer for a history (most recent first): `recommend` over the same item store, never an item
    whose title is in the history (the page takes history lines as titles)."""
    users = {name: value for name, value in processor.encode_users([history]).items()}
    with torch.no_grad():
        upe = model.encode_user(**users).user_embeddings
    titles = {item["title"] for item in history}
    seen = [item["item_id"] for item in catalogue if item["title"] in titles]
    top = recommend(upe, store, k=k, exclude=[seen])
    kept = [i for i, item_id in enumerate(top.item_ids[0]) if item_id is not None]  # not the excluded tail
    return [top.item_ids[0][i] for i in kept], [float(top.scores[0][i]) for i in kept]


def assert_same_ranking(ids, scores, expected_ids, expected_scores, tolerance=1e-3):
    """Same scores in the same order; ids equal wherever the order is decided (no near-tie with a neighbour)."""
    assert scores == pytest.approx(expected_scores, abs=tolerance)
    for rank, (got, want) in enumerate(zip(ids, expected_ids)):
        neighbours = [expected_scores[j] for j in (rank - 1, rank + 1) if 0 <= j < len(expected_scores)]
        if all(abs(expected_scores[rank] - other) > tolerance for other in neighbours):
            assert got == want, (rank, ids, expected_ids)


def test_space_folder_is_complete_and_self_contained(space, catalogue, space_model):
    files = {"README.md", "app.py", "requirements.txt", "space_config.json", "catalogue", "model"}
    assert files <= set(os.listdir(space))
    card = SpaceCard.load(space / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py" and card.data.models == ["org/embsum-tiny"]
    assert card.data.sdk_version and card.data.title == "Tiny EmbSum"
    store = EmbeddingStore.load(space / "catalogue", kind="items")
    assert store.ids == [item["item_id"] for item in catalogue] and store.embeddings.shape == (40, 2, 32)
    texts = [json.loads(line) for line in (space / "catalogue" / "items.jsonl").read_text().splitlines()]
    assert texts[3] == {key: catalogue[3][key] for key in ("item_id", "title", "abstract", "category")}
    imports = [line for line in (space / "app.py").read_text().splitlines() if line.startswith(("import ", "from "))]
    modules = {line.split()[1].split(".")[0] for line in imports}
    assert modules <= {
        "__future__",
        "os",
        "importlib",
        "json",
        "logging",
        "time",
        "pathlib",
        "gradio",
        "pandas",
        "torch",
        "safetensors",
        "transformers",
    }, modules
    assert {"configuration_embsum.py", "modeling_embsum.py", "pipeline_embsum.py"} <= set(os.listdir(space / "model"))
    settings = json.loads((space / "space_config.json").read_text())
    assert settings["model"] == "model" and settings["examples"][0]["history"]  # a few catalogue items


def test_the_spaces_model_card_is_the_models(tmp_path, space, space_model, processor):
    """A Space bundles the model with its own card: the same text as `embsum push --dry-run` stages for the same repo
    (license, data, results, "trained on clicks alone" kept), and the Space's card states the model's license."""
    from embsum_hf.hub import EmbSumModelCardData, save_repo

    facts = EmbSumModelCardData(
        data_domain="mind",
        dataset_name="MIND-small",
        summary_rows=0,
        evaluations=[{"split": "dev", "step": 4, "metrics": {"auc": 0.61}}],
    )
    run = save_repo(space_model, processor, tmp_path / "run", card_kwargs=facts)
    items = str(space / "catalogue" / "items.jsonl")
    common = ["--model-repo", "org/embsum-tiny", "--no-progress"]
    assert main(["space", "--model", str(run), "--items", items, "--output", str(tmp_path / "sp"), *common]) == 0
    assert main(["push", "--model", str(run), "--repo", "org/embsum-tiny", "--dry-run", str(tmp_path / "st")]) == 0
    bundled = (tmp_path / "sp" / "model" / "README.md").read_text()
    assert bundled == (tmp_path / "st" / "README.md").read_text()
    for fact in ("license: other", "MIND-small", "| 4 | dev | 61.00 |", "trained **on clicks alone**"):
        assert fact in bundled, fact
    assert "No ranking results recorded yet" not in bundled and "unrecorded data" not in bundled
    card = SpaceCard.load(tmp_path / "sp" / "README.md")
    assert (card.data.license, card.data.license_name) == ("other", "microsoft-research-license-mind")


def test_space_refuses_a_foreign_folder_and_a_mismatched_store(tmp_path, space, processor, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["space", "--model", str(space / "model"), "--items", str(space / "catalogue" / "items.jsonl")]
    assert main([*argv, "--output", str(tmp_path), "--no-progress"]) == 2
    assert "is not a Space folder" in capsys.readouterr().err and (tmp_path / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    torch.manual_seed(1)
    EmbSumModel(processor.config).save_pretrained(other)
    processor.save_pretrained(other)
    store_argv = ["space", "--model", str(other), "--items", str(space / "catalogue"), "--output", str(tmp_path / "s")]
    assert main([*store_argv, "--data", str(tmp_path / "no-such-data")]) == 2
    assert "no-such-data: no such file or folder" in capsys.readouterr().err
    assert main([*store_argv, "--data", str(space / "catalogue" / "items.jsonl")]) == 2  # another model's store
    assert "re-encode the store with this model" in capsys.readouterr().err


def test_space_from_a_data_folder_and_from_a_store_with_a_linked_model(tmp_path, space, space_model, processor):
    """`--items` as MIND-format data (example users from its histories), then as an existing item store of the same
    model with a Hub id to link instead of bundling (nothing re-encoded: the store's shards are copied)."""
    data = make_synthetic_mind(
        tmp_path / "data", num_users=30, num_news=60, num_train_impressions=40, num_dev_impressions=20, max_history=12
    )
    out = tmp_path / "from-data"
    assert (
        main(
            [
                "space",
                "--model",
                str(space / "model"),
                "--items",
                str(data / "dev"),
                "--output",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    settings = json.loads((out / "space_config.json").read_text())
    assert len(settings["examples"]) == 3
    assert all(example["name"].startswith("User ") for example in settings["examples"])
    for example in settings["examples"]:  # the label counts the lines it fills in
        assert re.search(rf"\((latest )?{len(example['history'])}( of \d+)? items read\)", example["name"]), example
    assert any(" of " in example["name"] for example in settings["examples"])  # a longer history, named as such
    assert len(EmbeddingStore.load(out / "catalogue")) == 60 and SpaceCard.load(out / "README.md").data.models is None

    linked = tmp_path / "linked"
    argv = [
        "space",
        "--model",
        str(space / "model"),
        "--items",
        str(space / "catalogue"),
        "--output",
        str(linked),
        "--data",
        str(space / "catalogue" / "items.jsonl"),
        "--model-repo",
        "org/embsum-tiny",
        "--link-model",
    ]
    assert main(argv) == 0
    assert not (linked / "model").exists() and json.loads((linked / "space_config.json").read_text())["model"] == (
        "org/embsum-tiny"
    )
    assert SpaceCard.load(linked / "README.md").data.models == ["org/embsum-tiny"]
    shard = "catalogue/shard-00000.safetensors"
    assert (linked / shard).read_bytes() == (space / shard).read_bytes()


def test_the_app_refuses_model_code_older_than_itself(tmp_path, space):
    """The app runs the model's own code (`update_user_state`, `score_shares`, `poly_relevance`): a model saved by an
    older embsum_hf (a linked Hub repo, say) stops start-up with one line saying what to do, not a traceback later."""
    old = tmp_path / "old-space"
    shutil.copytree(space, old)
    code = old / "model" / "modeling_embsum.py"
    text = code.read_text()
    for name in ("update_user_state", "score_shares"):  # as in the code files of the previous release
        assert f"\ndef {name}(" in text
        text = text.replace(f"\ndef {name}(", f"\ndef _{name}_not_yet(")
    code.write_text(text)
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    with pytest.raises(AssertionError, match="the app exited") as failed:
        start_app(old, hf_home)
    log = str(failed.value)
    assert "model: the model was saved by an older embsum_hf; its code lacks score_shares, update_user_state" in log
    assert "Traceback" not in log


def test_gradio_client_recommend_matches_the_package(app, space, space_model, processor, catalogue):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app, verbose=False)
    history = history_items(catalogue, [0, 4, 9])  # food, food, politics (titles unique in the catalogue)
    started = time.perf_counter()
    status, table, chart, summary, choice, why_history, why_pairs, why = client.predict(
        "\n".join(item["title"] for item in history), K, api_name="/recommend"
    )
    elapsed = time.perf_counter() - started
    logger.info("tiny Space: one /recommend round trip through gradio_client took %.3f s", elapsed)
    store = EmbeddingStore.load(space / "catalogue")
    ids, scores = expected_ranking(space_model, processor, catalogue, store, history)
    assert table["headers"] == ["rank", "item", "score", "item_id"] and len(table["data"]) == K
    assert_same_ranking([row[3] for row in table["data"]], [row[2] for row in table["data"]], ids, scores)
    # the bar chart's data, on an axis from 0 (scores of about 11 differ by tenths: no zoom that makes that look large)
    assert [row[1] for row in chart["value"]["data"]] == pytest.approx(scores, abs=1e-3)
    assert chart["y_lim"] == pytest.approx([min(0.0, *scores), max(0.0, *scores)], abs=1e-3)
    assert summary == generate_summaries(space_model, processor, [history])[0]
    assert "Ranked 40 items for a history of 3" in status

    # the explanation of the top item: the package's `explain` on the same user and item
    with torch.no_grad():
        user = space_model.encode_user(**processor.encode_users([history]), output_details=True)
    top = store.positions([table["data"][0][3]])[0]
    upe, weights = user.user_embeddings[0], user.attention_weights[0]
    expected = explain(upe, weights, store.embeddings[top], store.keys[top], history)
    shares = {label: share for label, share in why_history["data"]}
    assert len(shares) == len(expected.history) == 4  # three history items and the summary state
    for entry in expected.history:
        label = entry.title if entry.item_id is not None else "(your interest summary)"
        assert shares[label] == pytest.approx(entry.weight, abs=1e-4)
    assert sum(row[1] for row in why_pairs["data"]) == pytest.approx(1.0, abs=1e-4) and len(why_pairs["data"]) == 8
    assert why.startswith(f"**{choice['value']}** is recommended because of:")

    # a history longer than the model reads (12 items): the older lines are still never recommended
    long_history = history_items(catalogue, list(range(10, 24)))
    _, table, *_ = client.predict("\n".join(item["title"] for item in long_history), 40, api_name="/recommend")
    ids, scores = expected_ranking(space_model, processor, catalogue, store, long_history, k=40)
    recommended, read = {row[3] for row in table["data"]}, {item["item_id"] for item in long_history}
    assert len(table["data"]) == len(ids) == 26 and not recommended & read
    assert_same_ranking([row[3] for row in table["data"]], [row[2] for row in table["data"]], ids, scores)

    # a line that is no catalogue title is a new item, read as the pipeline reads a plain string
    mixed = [processor.as_item("rocket launch delayed again"), catalogue[1]]
    _, table, *_ = client.predict("\n".join(item["title"] for item in mixed), K, api_name="/recommend")
    ids, scores = expected_ranking(space_model, processor, catalogue, store, mixed)
    assert_same_ranking([row[3] for row in table["data"]], [row[2] for row in table["data"]], ids, scores)

    with pytest.raises(AppError, match="The history is empty"):
        client.predict("  \n ", K, api_name="/recommend")
    with pytest.raises(AppError, match="The history has 101 lines; the limit is 100"):
        client.predict("\n".join(f"item {i}" for i in range(101)), K, api_name="/recommend")
    with pytest.raises(AppError, match="Line 2 has 501 characters; the limit is 500"):
        client.predict("short\n" + "x" * 501, K, api_name="/recommend")
    # refused input is a message on the page and one line in the log, not a traceback
    log = APP_LOGS[app].read_text()
    assert "refused: The history is empty" in log and "Line 2 has 501 characters" in log
    assert "Traceback" not in log and "gradio.exceptions.Error" not in log, log[-3000:]


def chromium_driver(tmp_path: Path):
    """A real headless Chromium through Debian's chromedriver, logging every network request it makes."""
    if not (CHROMIUM and CHROMEDRIVER):
        message = "chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"
        if os.environ.get("EMBSUM_REQUIRE_BROWSER") == "1" or os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(f"{message}; CI must install them (`make install` does, as root)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def page_ranking(driver) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#ranking [role=row]")[1:]  # the first is the header
    return [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "[role=gridcell]")] for row in rows]


def bars(driver, chart: str) -> int:
    """Bars Vega drew into a chart's svg."""
    from selenium.webdriver.common.by import By

    return len(driver.find_elements(By.CSS_SELECTOR, f"{chart} .vega-embed svg g.mark-rect path"))


def test_browser_recommend_explain_and_mark_as_read(app, space, space_model, processor, catalogue, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.perf_counter()
    driver = chromium_driver(tmp_path)
    wait = WebDriverWait(driver, 120)
    store = EmbeddingStore.load(space / "catalogue")
    history = history_items(catalogue, [2, 6, 3])  # space, space, sports
    try:
        driver.get(app)
        box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#history textarea")))

        # before the first query the table shows its column names, not "1 2 3" (once the table has rendered)
        def headers(d) -> list[str]:
            cells = d.find_elements(By.CSS_SELECTOR, "#ranking [role=columnheader]")
            return [text for text in (cell.text.strip() for cell in cells) if text]

        assert wait.until(headers) == ["rank", "item", "score", "item_id"]
        # an example user fills the history box
        driver.find_element(By.CSS_SELECTOR, "#example input").click()
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#example [role=option]"))).click()
        example = "\n".join(item["title"] for item in catalogue[:5])  # what `embsum space` makes of an items file
        wait.until(lambda d: box.get_attribute("value") == example)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        box.send_keys("\n".join(item["title"] for item in history))
        driver.find_element(By.CSS_SELECTOR, "#recommend").click()
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#status"), "Ranked 40 items"))
        wait.until(lambda d: len(page_ranking(d)) == PAGE_K)

        ids, scores = expected_ranking(space_model, processor, catalogue, store, history, PAGE_K)
        table = page_ranking(driver)
        assert_same_ranking([row[3] for row in table], [float(row[2]) for row in table], ids, scores)
        summary = driver.find_element(By.CSS_SELECTOR, "#summary textarea").get_attribute("value")
        assert summary == generate_summaries(space_model, processor, [history])[0]
        # the charts, drawn by Vega: one bar per recommendation, per history item (+ summary), per code pair
        for chart, count in (("#scores-chart", PAGE_K), ("#why-history", 4), ("#why-codes", 8)):
            wait.until(lambda d, c=chart, n=count: bars(d, c) == n)
        axis = driver.find_element(By.CSS_SELECTOR, "#scores-chart g.role-axis[aria-label^='X-axis']")
        assert f"1. {table[0][1]}" in axis.get_attribute("aria-label")
        # the score axis includes 0 (a 0.5-point spread must not fill the chart)
        y_axis = driver.find_element(By.CSS_SELECTOR, "#scores-chart g.role-axis[aria-label^='Y-axis']")
        label = y_axis.get_attribute("aria-label")
        low, high = map(float, re.search(r"from (-?[\d.]+) to (-?[\d.]+)", label).groups())
        assert low <= 0 <= high, label
        why = driver.find_element(By.CSS_SELECTOR, "#why").text
        assert why.startswith(f"1. {table[0][1]} is recommended because of:")
        driver.save_screenshot(str(tmp_path / "space_recommend.png"))

        # mark the top recommendation as read: it joins the history (top line) and leaves the ranking
        driver.find_element(By.CSS_SELECTOR, "#mark-read").click()
        wait.until(
            lambda d: (
                d.find_element(By.CSS_SELECTOR, "#history textarea")
                .get_attribute("value")
                .startswith(table[0][1] + "\n")
            )
        )
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#status"), "history of 4"))
        wait.until(lambda d: page_ranking(d) and page_ranking(d)[0][3] != table[0][3])
        after = page_ranking(driver)
        new_history = [store_item(catalogue, table[0][3]), *history]
        ids, scores = expected_ranking(space_model, processor, catalogue, store, new_history, PAGE_K)
        assert_same_ranking([row[3] for row in after], [float(row[2]) for row in after], ids, scores)
        assert table[0][3] not in [row[3] for row in after]
        status = driver.find_element(By.CSS_SELECTOR, "#status").text
        encoded, sessions = map(int, re.search(r"\((\d+) of (\d+) sessions encoded\)", status).groups())
        assert encoded < sessions, status  # incremental: the older session's encoder states were reused
        driver.save_screenshot(str(tmp_path / "space_mark_as_read.png"))

        # nothing but the app itself was contacted
        hosts = set()
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                url = urlparse(message["params"]["request"]["url"])
                if url.scheme in ("http", "https", "ws", "wss"):
                    hosts.add(url.hostname)
        assert hosts == {"127.0.0.1"}, hosts
    finally:
        driver.quit()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in ("space_recommend.png", "space_mark_as_read.png"):
        shutil.copyfile(tmp_path / name, ARTIFACTS / name)
    logger.info("browser test: %.1f s (Chromium start, two queries, screenshots)", time.perf_counter() - started)


def store_item(catalogue: list[dict], item_id: str) -> dict:
    return next(item for item in catalogue if item["item_id"] == item_id)


def test_push_space_uploads_the_folder(space, tmp_path, fake_hub, capsys):  # noqa: F811 (the fixture)
    argv = ["push", "--space", "org/embsum-space", "--folder", str(space)]
    assert main([*argv, "--dry-run", str(tmp_path / "staged")]) == 0
    assert (tmp_path / "staged" / "app.py").read_bytes() == (space / "app.py").read_bytes()
    assert FakeHub.commits == []
    assert main([*argv, "--endpoint", fake_hub, "--token", "hf_local_test", "--message", "v1"]) == 0
    assert "pushed the Space" in capsys.readouterr().out
    api = HfApi(endpoint=fake_hub, token="hf_local_test")
    assert push_space(space, "org/embsum-space", token="hf_local_test", api=api).endswith("/commit/abc")
    uploaded = {str(path.relative_to(space)) for path in space.rglob("*") if path.is_file()}
    for commit, summary in zip(FakeHub.commits, ("v1", "Upload EmbSum Space"), strict=True):
        assert commit["path"] == "/api/spaces/org/embsum-space/commit/main" and commit["header"]["summary"] == summary
        assert set(commit["files"]) == uploaded and commit["files"]["app.py"] == (space / "app.py").read_bytes()
    assert main(["push", "--space", "org/x", "--folder", str(tmp_path)]) == 2
    assert "is not a Space folder written by `embsum space`" in capsys.readouterr().err


def test_the_app_sent_nothing_beyond_loopback(app, outbound):
    """Runs after the app served the tests above: no analytics, telemetry or update check left the machine (every
    request but loopback goes through the recording proxy, which this test first checks it would see)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": outbound}))
    with pytest.raises(urllib.error.HTTPError):
        opener.open("http://example.invalid/probe", timeout=10)
    assert Outbound.requests == ["GET http://example.invalid/probe"]


def test_a_space_of_a_model_with_an_item_prior_ranks_as_the_package(tmp_path, tokenizer, items):
    # the late-fused prior is part of the model's score: the Space adds it as `embsum recommend` does
    from gradio_client import Client

    from embsum_hf import EmbSumProcessor
    from tests.conftest import tiny_config

    config = tiny_config(tokenizer, item_prior_ids=[item["item_id"] for item in items[:10]])
    torch.manual_seed(0)
    model = EmbSumModel(config).eval()
    with torch.no_grad():
        model.item_prior.weight[1:] = torch.linspace(5.0, 50.0, 10)[:, None]  # N9's prior dominates every score
    processor = EmbSumProcessor(tokenizer, config, item_template="mind")
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    argv = [
        "space",
        "--model",
        str(tmp_path / "model"),
        "--items",
        str(tmp_path / "items.jsonl"),
        "--output",
        str(tmp_path / "space"),
        "--model-repo",
        "org/embsum-prior",
        "--no-progress",
    ]
    assert main(argv) == 0
    (tmp_path / "hf_home").mkdir()
    process, url, _ = start_app(tmp_path / "space", tmp_path / "hf_home")
    try:
        history = history_items(items, [20, 24, 29])
        _, table, *_ = Client(url, verbose=False).predict(
            "\n".join(item["title"] for item in history), K, api_name="/recommend"
        )
    finally:
        stop_app(process)
    store = EmbeddingStore.load(tmp_path / "space" / "catalogue")
    assert store.prior is not None and float(store.prior.max()) == pytest.approx(50.0)
    ids, scores = expected_ranking(model, processor, items, store, history)
    assert table["data"][0][3] == ids[0] == "N9"
    assert_same_ranking([row[3] for row in table["data"]], [row[2] for row in table["data"]], ids, scores)
