"""`train_tokenizer`: a T5-style tokenizer trained on a catalogue's own text, for models trained from scratch.

Training-only: it stays out of the Hub-facing `processing_embsum.py` (a saved model ships its tokenizer's files).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from transformers import T5Tokenizer

from ..processing_embsum import add_item_start_token


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000) -> T5Tokenizer:
    """
    Train a T5-style tokenizer (Unigram, `<pad>`=0, `</s>`=1, `<unk>`=2, Metaspace pre-tokenisation) on `texts` with
    the `tokenizers` library, for offline and custom domains; `<sos>` is added. The vocabulary can come out smaller
    than `vocab_size` on a small corpus. The same texts give the same tokenizer in every process (see below).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator(texts, trainer=trainer)
    vocab = [tuple(entry) for entry in json.loads(backend.to_str())["model"]["vocab"]]
    # The Rust trainer walks hash maps in a per-process random order, so its output differs between processes in
    # three ways, all made canonical here: (1) float sums in another order move scores in the last bits (~1e-14):
    # scores are rounded to 1e-6; (2) equal scores come in hash order: pieces are sorted by (score, piece); (3) the
    # characters the model dropped are re-added at `min_score + k * 1e-4`, k in hash order: they get their k in
    # character order.
    specials, pieces = vocab[:3], vocab[3:]
    low = min((score for _, score in pieces), default=0.0)
    readded = {
        i
        for i, (piece, score) in enumerate(pieces)
        if len(piece) == 1 and abs((score - low) * 1e4 - round((score - low) * 1e4)) < 1e-6
    }
    readded_pieces = zip(sorted(pieces[i][0] for i in readded), sorted(pieces[i][1] for i in readded))
    pieces = [entry for i, entry in enumerate(pieces) if i not in readded] + list(readded_pieces)
    pieces = sorted(((piece, round(score, 6)) for piece, score in pieces), key=lambda entry: (-entry[1], entry[0]))
    tokenizer = T5Tokenizer(vocab=specials + pieces, extra_ids=0)
    add_item_start_token(tokenizer)
    return tokenizer
