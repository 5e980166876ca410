"""`train_tokenizer` gives the same tokenizer in every process (the Rust trainer walks hash maps in random order)."""

import subprocess
import sys

from ..conftest import TOPICS

SCRIPT = """
import sys
from embsum_hf import train_tokenizer
texts = sys.stdin.read().splitlines()
tokenizer = train_tokenizer(texts, vocab_size=int(sys.argv[1]))
tokenizer.save_pretrained(sys.argv[2])
"""


def test_train_tokenizer_is_identical_across_processes(tmp_path):
    # rare characters (digits, capitals) that the Unigram model drops and the trainer re-adds in hash order
    texts = [
        f"News Title: {words} {i}; Category: {topic.upper()} Q{i}x" for i, (topic, words) in enumerate(TOPICS.items())
    ]
    texts = texts * 20 + ["zebra quiz 7", "Jackdaws love my big sphinx of quartz 1984"]
    files = []
    for run in range(3):
        folder = tmp_path / str(run)
        command = [sys.executable, "-c", SCRIPT, "120", str(folder)]
        subprocess.run(command, input="\n".join(texts), text=True, check=True, timeout=300)
        files.append((folder / "tokenizer.json").read_bytes())
    assert files[0] == files[1] == files[2]

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "0")
    ids = tokenizer("Jackdaws love my big sphinx of quartz 1984").input_ids
    assert tokenizer.unk_token_id not in ids  # every character of the corpus stays encodable


def test_train_tokenizer_is_training_code_outside_the_hub_files():
    import embsum_hf
    from embsum_hf import processing_embsum
    from embsum_hf.training import tokenizer

    assert embsum_hf.train_tokenizer is tokenizer.train_tokenizer  # still importable from the package top level
    assert "train_tokenizer" not in vars(processing_embsum)  # a saved model's processing_embsum.py does not ship it
