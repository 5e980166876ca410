"""The summary decoder's copy mechanism (`EmbSumConfig.summary_copy`) and well-formed template slots at decoding."""

import json
import re

import pytest
import torch

from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.metrics.summary import malformed_summary
from embsum_hf.modeling_embsum import SummaryCopy, WellFormedSlots

from ..conftest import TOPICS, tiny_config


def users_of(processor, items, summaries=None):
    return processor.encode_users([items[:9], items[20:23], []], summaries=summaries)


def test_copy_distribution_shapes_and_sums():
    torch.manual_seed(0)
    copy = SummaryCopy(8)
    states, inputs, logits = torch.randn(3, 4, 8), torch.randn(3, 4, 8), torch.randn(3, 4, 20)
    memory = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)  # user 2: nothing
    ids = torch.tensor([[7, 7, 3, 9, 9], [1, 2, 3, 4, 5], [6, 6, 6, 6, 6]])
    mixed, p_gen = copy(states, inputs, memory, mask, ids, logits)
    assert mixed.shape == (3, 4, 20) and p_gen.shape == (3, 4)
    torch.testing.assert_close(mixed.sum(-1), torch.ones(3, 4))
    assert ((p_gen > 0) & (p_gen < 1))[:2].all()
    # nothing to copy: the vocabulary distribution alone; else the copy share lands on the memory's tokens only
    torch.testing.assert_close(p_gen[2], torch.ones(4))
    torch.testing.assert_close(mixed[2], logits[2].softmax(-1))
    copied = mixed[0] - p_gen[0, :, None] * logits[0].softmax(-1)
    assert set(copied.abs().sum(0).nonzero().flatten().tolist()) == {3, 7}  # 9 is masked out
    torch.testing.assert_close(copied.sum(-1), 1 - p_gen[0])


def test_copy_loss_is_the_mixture_nll_and_round_trips(tmp_path, tokenizer, processor, items):
    config = tiny_config(tokenizer, summary_copy=True)
    assert not tiny_config(tokenizer).summary_copy  # off by default
    torch.manual_seed(0)
    model = EmbSumModel(config).eval()
    assert any(
        name.startswith(EmbSumModel.new_layer_prefixes)
        for name, _ in model.summary_copy.named_parameters(prefix="summary_copy")
    )
    users = users_of(processor, items, ["The user is interested in sports.", "Space.", "Food."])
    candidates = processor.pad_candidates([processor.tokenize_items(items[30:32])] * 3)
    labels = users["summary_labels"]
    with torch.no_grad():
        out = model(**users, **candidates)
        details = model.encode_user(
            users["session_input_ids"], users["session_attention_mask"], labels, output_details=True
        )
        memory = details.session_states.flatten(1, 2)
        mask = users["session_attention_mask"].flatten(1).bool()
        ids = users["session_input_ids"].flatten(1)
        copyable = mask & ~torch.isin(ids, torch.tensor([0, tokenizer.eos_token_id, config.item_start_token_id]))
        states = model.t5.decoder(
            input_ids=details.summary_ids, encoder_hidden_states=memory, encoder_attention_mask=mask.long()
        ).last_hidden_state
        inputs = model.t5.get_input_embeddings()(details.summary_ids)
        mixed, _ = model.summary_copy(states, inputs, memory, copyable, ids, model._lm_logits(states))
    # padded memory positions change nothing: the same NLL as the model's, which reads them gathered to the front
    picked = mixed.gather(2, labels.clamp(min=0)[..., None])[..., 0]
    valid = labels != -100
    torch.testing.assert_close(out.summary_loss, -picked.log()[valid].mean())
    generated = model.generate_summary(users["session_input_ids"], users["session_attention_mask"])
    model.save_pretrained(tmp_path)
    loaded = EmbSumModel.from_pretrained(tmp_path).eval()
    assert loaded.config.summary_copy and loaded.summary_copy is not None
    torch.testing.assert_close(loaded.summary_copy.gate.weight, model.summary_copy.gate.weight)
    torch.testing.assert_close(
        loaded.generate_summary(users["session_input_ids"], users["session_attention_mask"]), generated
    )
    with pytest.raises(ValueError, match="summary_copy"):
        tiny_config(tokenizer, summary_copy="yes")


STEPS = 60


def one_word_users(processor, words):
    items = [
        {"item_id": f"W{i}", "title": word, "abstract": "news", "category": "news", "subcategory": "news"}
        for i, word in enumerate(words)
    ]
    users = processor.encode_users([[item] for item in items], [f"The user is interested in {w}." for w in words])
    return users, items


def test_greedy_generation_copies_an_unseen_history_word(tokenizer):
    """Trained to name the one word its history holds, the copy model names words it never saw in a summary."""
    train_words = " ".join(TOPICS[topic] for topic in ("sports", "space", "politics")).split()
    unseen = TOPICS["food"].split()  # in no training summary: the vocabulary head never learns to write them
    written = {}
    for copy in (True, False):
        config = tiny_config(tokenizer, summary_copy=copy, summary_max_tokens=24, summary_loss_weight=4.0)
        processor = EmbSumProcessor(tokenizer, config, item_template="mind")
        torch.manual_seed(0)
        model = EmbSumModel(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        generator = torch.Generator().manual_seed(0)
        for _ in range(STEPS):
            batch = [train_words[i] for i in torch.randint(len(train_words), (16,), generator=generator)]
            users, items = one_word_users(processor, batch)
            candidates = processor.pad_candidates([processor.tokenize_items(items[:2])] * len(batch))
            loss = model(**users, **candidates).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        users, _ = one_word_users(processor, unseen)
        ids = model.generate_summary(users["session_input_ids"], users["session_attention_mask"], history_boost=0.0)
        # the slot: what greedy decoding writes after the lead, up to the full stop
        lead = len(tokenizer("The user is interested in", add_special_tokens=False)["input_ids"])
        stop = set(tokenizer(".", add_special_tokens=False)["input_ids"]) | {tokenizer.eos_token_id, 0}
        shares = []
        for word, row in zip(unseen, ids[:, 1 + lead :].tolist()):
            slot = [token for token in row if token not in stop]
            own = set(tokenizer(word, add_special_tokens=False)["input_ids"])
            shares.append(sum(token in own for token in slot) / max(len(slot), 1))
        written[copy] = sum(shares) / len(shares)  # the share of the slot's tokens copied from the user's word
    assert written[True] >= 0.5 and written[True] >= written[False] + 0.3, written


def test_well_formed_slots_by_hand(tokenizer):
    slots = WellFormedSlots.from_tokenizer(tokenizer, "interested in")

    def banned(text: str) -> set[str]:
        ids = [tokenizer.pad_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        scores = slots(torch.tensor([ids]), torch.zeros(1, len(tokenizer)))
        return {tokenizer.convert_ids_to_tokens(i) for i in (scores[0] == float("-inf")).nonzero().flatten().tolist()}

    lead = "The user is interested in"  # this tokenizer has no comma: slots are separated by "and"
    assert banned("The user is") == set()  # before the lead: the template's own words
    start = banned(lead)
    assert {".", "</s>", "\u2581in", "\u2581a"} <= start  # no empty slot, no stop-word to open one
    assert "e" in start and not {"\u2581spice", "\u2581"} & start  # the lead ends as a word ("in", not "ine")
    after = banned(f"{lead} spice")
    assert "\u2581spice" in after and not {".", "</s>", "\u2581galaxy"} & after  # no word twice
    # words written piece by piece ("and" is \u2581 a n d here) are checked as they end
    separating = banned(f"{lead} spice and")  # a separator: the next slot may not be empty or open with "in"
    assert {".", "</s>", "\u2581in", "\u2581spice"} <= separating and "\u2581galaxy" not in separating
    closing = banned(f"{lead} spice and and")  # would close an empty slot: only a word piece may follow ("andes")
    assert {".", "\u2581", "\u2581galaxy", "</s>"} <= closing and "e" not in closing
    repeated = banned(f"{lead} football and football")  # would end as an earlier word: it goes on
    assert {".", "\u2581", "</s>"} <= repeated and "s" not in repeated
    assert banned(f"{lead} football and debate.") == set(tokenizer.get_vocab()) - {"</s>"}  # the full stop ends it


def complete_slots(text: str) -> str:
    """`text` without its last slot, which the length limit may have cut short ("..., foo" for "..., football")."""
    return re.sub(r"(,|\band\b)[^,]*$", "", text)


def test_well_formed_generation_is_in_the_config(tmp_path, tokenizer, processor, items):
    """A random tiny model, started after the lead, writes malformed slots; with the constraint (the default) none."""
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_max_tokens=40, summary_generation={})).eval()
    assert model.config.summary_slot_lead == "interested in"
    users = processor.encode_users([items[i : i + 4] for i in range(0, 40, 4)])
    lead = tokenizer("The user is interested in", add_special_tokens=False)["input_ids"]
    prefix = torch.tensor([[tokenizer.pad_token_id, *lead]] * 10)
    kwargs = dict(processor=processor, history_boost=0.0, decoder_input_ids=prefix, do_sample=True, top_k=0)
    torch.manual_seed(1)
    free = model.generate_summary(**users, slot_lead=None, **kwargs)
    torch.manual_seed(1)
    kept = model.generate_summary(**users, **kwargs)
    assert sum(malformed_summary(complete_slots(text)) for text in free) >= 5, free
    assert not any(malformed_summary(complete_slots(text)) for text in kept), kept
    model.save_pretrained(tmp_path)
    assert EmbSumModel.from_pretrained(tmp_path).config.summary_slot_lead == "interested in"


def test_well_formed_slots_on_hand_made_tokens():
    """Tokens that end a word within themselves (" self-") count as writing it; "and" may close a slot."""
    texts = ["", "", " the reader is interested in", " self-", "discovery", " self", ",", " and", " love", "."]
    slots = WellFormedSlots(texts, "interested in", eos_token_id=1)

    def banned(*ids: int) -> set[str]:
        scores = slots(torch.tensor([[0, 2, *ids]]), torch.zeros(1, len(texts)))
        return {texts[i] for i in (scores[0] == float("-inf")).nonzero().flatten().tolist()}

    assert {" self-", " self"} <= banned(3, 4, 6)  # "self-discovery,": "self" is written
    assert " love" not in banned(3, 4, 6) and " self-" not in banned(8, 6)
    assert {",", " and", "."} & banned(3, 4, 6, 8, 7) == {",", " and", "."}  # "... love and": a slot must follow
    # after a comma a slot word starts as a word: "discovery" would glue on ("self-discovery,discovery")
    assert "discovery" in banned(3, 4, 6) and "discovery" not in banned(3)
    # a lone word-start marker (" ", id 10) is followed by a word piece: no second space, word start or separator
    lone = WellFormedSlots([*texts, " "], "interested in", eos_token_id=1)
    scores = lone(torch.tensor([[0, 2, 3, 4, 6, 10]]), torch.zeros(1, len(texts) + 1))
    after = {([*texts, " "])[i] for i in (scores[0] == float("-inf")).nonzero().flatten().tolist()}
    assert "discovery" not in after and {" ", " love", " self", ",", " and", "."} <= after


def test_well_formed_slots_keep_to_the_summary_words():
    """Given words, a slot word starts, goes on and ends along the spelling of one of them ("poe" is no word)."""
    texts = ["", "", " the reader is interested in", " poe", "ms", "try", " mystery", " gal", "axy", ",", " and", "."]
    slots = WellFormedSlots(texts, "interested in", eos_token_id=1, words=["poems", "mystery", "galz", "and"])
    free = WellFormedSlots(texts, "interested in", eos_token_id=1)

    def banned(*ids: int, rule=slots) -> set[str]:
        scores = rule(torch.tensor([[0, 2, *ids]]), torch.zeros(1, len(texts)))
        return {texts[i] for i in (scores[0] == float("-inf")).nonzero().flatten().tolist()}

    assert " gal" not in banned() and " poe" not in banned() and " mystery" not in banned()
    started = banned(3)  # " poe": only "ms" goes on along "poems"; it may not end here
    assert {",", " and", ".", "", "try", "axy", " mystery"} <= started and "ms" not in started
    assert started - {"ms"} == set(texts) - {"ms"}
    assert "try" not in banned(3, rule=free) and "," not in banned(3, rule=free)  # without words: "poetry", "poe,"
    written = banned(3, 4)  # "poems" is a word: it may end
    assert {",", " and", " mystery", " poe"}.isdisjoint(written) and {"ms", "try", "axy"} <= written
    # after a lone marker the word piece must begin a word: "ms" begins none ("mystery" is a word-start token here)
    spaced = WellFormedSlots([*texts, " "], "interested in", eos_token_id=1, words=["poems", "mystery", "try"])
    scores = spaced(torch.tensor([[0, 2, len(texts)]]), torch.zeros(1, len(texts) + 1))
    allowed = {([*texts, " "])[i] for i in (scores[0] != float("-inf")).nonzero().flatten().tolist()}
    assert allowed - {""} == {"try"} and scores[0, 1] == float("-inf")  # and not </s> (id 1)
    # no way on ("galz" needs a "z" this vocabulary lacks): the summary ends (</s>, id 1) rather than write a non-word
    scores = slots(torch.tensor([[0, 2, 7]]), torch.zeros(1, len(texts)))
    assert (scores[0] == float("-inf")).nonzero().flatten().tolist() == [i for i in range(len(texts)) if i != 1]


def test_trained_processors_keep_summaries_to_their_training_words(tmp_path, tokenizer, config, items):
    """A random tiny model sampling freely writes words no summary used; with the processor's summary words none."""
    from embsum_hf.training.recipe import summary_vocabulary

    words = summary_vocabulary([f"The user is interested in {topic} and {w}." for topic, w in TOPICS.items()])
    assert "interested" in words and words == sorted(set(words))
    processor = EmbSumProcessor(tokenizer, config, item_template="mind", summary_words=words)
    processor.save_pretrained(tmp_path)
    assert EmbSumProcessor.from_pretrained(tmp_path, config=config).summary_words == words
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_max_tokens=40, summary_generation={})).eval()
    users = processor.encode_users([items[i : i + 4] for i in range(0, 40, 4)])
    lead = tokenizer("The user is interested in", add_special_tokens=False)["input_ids"]
    prefix = torch.tensor([[tokenizer.pad_token_id, *lead]] * 10)
    kwargs = dict(processor=processor, history_boost=0.0, decoder_input_ids=prefix, do_sample=True, top_k=0)

    def slot_words(texts: list[str]) -> list[str]:
        """The slots' words, less the last of a summary the length limit cut short (no full stop: "... ke")."""
        slots = [WellFormedSlots.split_words(text.lower().partition("interested in")[2]) for text in texts]
        return [w for text, ws in zip(texts, slots) for w in (ws if text.endswith(".") else ws[:-1])]

    torch.manual_seed(1)
    free = slot_words(model.generate_summary(**users, slot_words=None, **kwargs))
    torch.manual_seed(1)
    kept = slot_words(model.generate_summary(**users, **kwargs))
    assert sum(word not in words for word in free) >= 5, free
    assert kept and all(word in words for word in kept), kept
    # built once per processor, lead and words (a server's every call would re-read the vocabulary), and not saved
    built = WellFormedSlots.for_processor(processor, "interested in", words)
    assert WellFormedSlots.for_processor(processor, "interested in", list(words)) is built
    assert WellFormedSlots.for_processor(processor, "interested in", None).words is None
    processor.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "processor_config.json").read_text())
    assert saved["summary_words"] == words and not any(key.startswith("_") for key in saved)
    with pytest.raises(ValueError, match="summary_words must be a list of words"):
        EmbSumProcessor(tokenizer, config, item_template="mind", summary_words="mystery")
