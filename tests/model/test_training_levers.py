"""The click-loss levers for small from-scratch models: several clicks per user, in-batch negatives with logQ,
one-item sessions and the encoder's sharing of identical rows. Each is checked against its definition."""

import math

import torch

from embsum_hf import EmbSumModel, EmbSumProcessor

from ..conftest import tiny_config


def batch(processor, items):
    users = processor.encode_users([items[:7], items[10:12], []])
    groups = [items[20:24], items[24:26] + [items[20]], items[30:33]]  # item 20 is a candidate of users 0 and 1
    candidates = processor.pad_candidates([processor.tokenize_items(group) for group in groups])
    labels = torch.tensor([[1, 1, 0, 0], [1, 0, 0, -100], [0, 1, 0, -100]])
    return users, candidates, labels


def test_several_clicks_each_against_the_users_negatives(model, processor, items):
    users, candidates, labels = batch(processor, items)
    out = model(**users, **candidates, candidate_labels=labels)
    logits = out.logits
    users_losses = []  # each user's clicks averaged, then the users (users 0 and 2 have 2 and 1 clicks)
    for b in range(3):
        negatives = logits[b][labels[b] == 0]
        losses = [
            -(logits[b, p] - torch.logsumexp(torch.cat([logits[b, p : p + 1], negatives]), 0))
            for p in (labels[b] == 1).nonzero()[:, 0]
        ]
        users_losses.append(torch.stack(losses).mean())
    torch.testing.assert_close(out.ctr_loss, torch.stack(users_losses).mean())
    # the default labels are "candidate 0 clicked, the rest not": the paper's NCE, unchanged
    default = model(**users, **candidates)
    explicit = (candidates["candidate_attention_mask"].any(-1).long() - 1) * 100  # -100 padding, 0 elsewhere
    explicit[:, 0] = 1
    torch.testing.assert_close(default.ctr_loss, model(**users, **candidates, candidate_labels=explicit).ctr_loss)


def test_in_batch_negatives_and_logq(model, processor, items):
    from embsum_hf.training.trainer import in_batch_click_loss

    users, candidates, labels = batch(processor, items)
    log_q = torch.log(torch.rand(labels.shape) * 0.5 + 0.1)
    inputs = {**users, **candidates, "candidate_labels": labels}
    outputs = model(**inputs)
    loss = in_batch_click_loss(model, outputs, inputs, log_q)
    with torch.no_grad():
        upe = model(**inputs).user_embeddings
    present = candidates["candidate_attention_mask"].any(-1)
    flat_ids = candidates["candidate_input_ids"].flatten(0, 1)
    cpe = model.encode_item(flat_ids, candidates["candidate_attention_mask"].flatten(0, 1))
    scores = model.score(upe, cpe)  # (B, B*C)
    users_losses = []
    for b in range(3):
        own = [b * 4 + c for c in range(4) if present[b, c]]
        own_rows = {tuple(flat_ids[i].tolist()) for i in own}
        others = [
            i
            for i in range(12)
            if i // 4 != b and present.flatten()[i] and tuple(flat_ids[i].tolist()) not in own_rows
        ]
        negatives = torch.cat(
            [
                scores[b, [b * 4 + c for c in range(4) if labels[b, c] == 0]],
                scores[b, others] - log_q.flatten()[others] - math.log(int(present.sum())),
            ]
        )
        clicks = scores[b, [b * 4 + c for c in (labels[b] == 1).nonzero()[:, 0].tolist()]]
        losses = [-(click - torch.logsumexp(torch.cat([click[None], negatives]), 0)) for click in clicks]
        users_losses.append(torch.stack(losses).mean())
    torch.testing.assert_close(loss, torch.stack(users_losses).mean(), atol=1e-5, rtol=1e-5)
    # (item 20, user 0's click and user 1's negative, is left out of user 0's in-batch negatives above)
    # without logQ the in-batch scores are not shifted
    assert not torch.isclose(in_batch_click_loss(model, outputs, inputs), loss)
    assert not torch.isclose(outputs.ctr_loss, loss)  # the model's own click loss is the paper's, without them


def test_shared_rows_give_the_states_of_separate_encoding(model, processor, items):
    inputs = processor.encode_items([items[1], items[2], items[1], items[1], items[3]])
    ids, mask = inputs["item_input_ids"], inputs["item_attention_mask"]
    with torch.no_grad():
        shared = model.encode_rows(ids, mask)
        alone = torch.cat(
            [
                model.t5.encoder(input_ids=ids[i : i + 1], attention_mask=mask[i : i + 1]).last_hidden_state
                for i in range(len(ids))
            ]
        )
    torch.testing.assert_close(shared, alone, atol=1e-5, rtol=1e-5)
    # gradients reach every copy's parameters as if the rows had been encoded one by one
    model.zero_grad()
    model.encode_rows(ids, mask).sum().backward()
    grad = model.t5.shared.weight.grad.clone()
    model.zero_grad()
    sum(
        model.t5.encoder(input_ids=ids[i : i + 1], attention_mask=mask[i : i + 1]).last_hidden_state.sum()
        for i in range(len(ids))
    ).backward()
    torch.testing.assert_close(grad, model.t5.shared.weight.grad, atol=1e-4, rtol=1e-4)


def test_rows_of_different_lengths_are_encoded_at_their_own_width(model, processor, items):
    # 80 distinct rows of 1 to 40 tokens: more than one length group, each encoded at its own width
    ids = torch.zeros(80, 40, dtype=torch.long)
    mask = torch.zeros_like(ids)
    generator = torch.Generator().manual_seed(0)
    for row in range(80):
        length = 1 + row % 40
        ids[row, :length] = torch.randint(3, processor.tokenizer.vocab_size, (length,), generator=generator)
        mask[row, :length] = 1
    lengths = mask.sum(-1)
    with torch.no_grad():
        grouped = model.encode_rows(ids, mask)
    for row in range(80):
        n = int(lengths[row])
        alone = model.t5.encoder(input_ids=ids[row : row + 1, :n], attention_mask=mask[row : row + 1, :n])
        torch.testing.assert_close(grouped[row, :n], alone.last_hidden_state[0], atol=1e-5, rtol=1e-5)
        assert not grouped[row, n:].any()  # past the row's width: zeros, which every consumer masks
    # the gradients are those of encoding each row alone
    model.zero_grad()
    model.encode_rows(ids, mask).sum().backward()
    grad = model.t5.shared.weight.grad.clone()
    model.zero_grad()
    sum(
        model.t5.encoder(
            input_ids=ids[row : row + 1, :n], attention_mask=mask[row : row + 1, :n]
        ).last_hidden_state.sum()
        for row, n in enumerate(lengths.tolist())
    ).backward()
    torch.testing.assert_close(grad, model.t5.shared.weight.grad, atol=1e-4, rtol=1e-4)


def test_the_summary_decoder_reads_only_the_attended_memory(model, processor, items):
    # the decoder's memory is the attended session positions gathered to the front: the teacher-forced states are
    # those of cross-attending over the whole padded memory with its mask
    users = processor.encode_users([items[:7], items[10:12], items[5:6]])
    labels = processor.tokenizer(["the user reads sports", "music"], padding=True, return_tensors="pt").input_ids
    labels = labels.masked_fill(labels == processor.tokenizer.pad_token_id, -100)
    labels = torch.cat([labels, torch.full((1, labels.shape[1]), -100)])  # the third user has no teacher summary
    with torch.no_grad():
        out = model.encode_user(**users, summary_labels=labels, output_details=True)
        states = out.session_states
        batch, sessions, length, d = states.shape
        memory = states.reshape(batch, -1, d)
        read = users["session_attention_mask"].reshape(batch, -1)
        assert (read == 0).any()  # the padding is there to be skipped
        targets = model._summary_targets(memory, read.long(), labels)
        _, full_state, _ = model._decode_summary(memory, read.long(), targets)
    torch.testing.assert_close(out.summary_state, full_state, atol=1e-5, rtol=1e-5)


def test_one_item_sessions(tokenizer, items):
    config = tiny_config(tokenizer, session_max_items=1)
    processor = EmbSumProcessor(tokenizer, config, item_template="mind")
    sessions = processor.pack_sessions(processor.tokenize_items(items[:5]))
    assert len(sessions) == 5
    assert all(
        session.count(config.item_start_token_id) == 1 and session[-1] == processor.eos_token_id
        for session in sessions
    )
    # oldest first, as with the paper's packing
    assert sessions[-1][:-1] == processor.tokenize_items(items[:1])[0]
    model = EmbSumModel(config).eval()
    users = processor.encode_users([items[:5]])
    with torch.no_grad():
        user = model.encode_user(**users, output_details=True)
    assert user.item_mask.sum() == 5


def test_item_prior_is_optional_learned_and_zero_for_unseen(tokenizer, processor, items):
    from embsum_hf.training import EmbSumDataCollator

    assert EmbSumModel(tiny_config(tokenizer)).item_prior is None  # the paper's model has none
    config = tiny_config(tokenizer, item_prior_ids=[item["item_id"] for item in items[:20]])
    model = EmbSumModel(config)
    index = model.item_prior_index(["N3", "N19", "N-unseen", "N25"])
    assert index.tolist() == [4, 20, 0, 0]
    assert model.item_prior_scores(index).eq(0).all()  # starts at 0

    prior_processor = EmbSumProcessor(tokenizer, config, item_template="mind")
    tokens = {item["item_id"]: ids for item, ids in zip(items, prior_processor.tokenize_items(items))}
    collator = EmbSumDataCollator(prior_processor, tokens)
    examples = [{"history": ["N1", "N2"], "candidates": ["N3", "N30", "N4"], "summary": None}] * 2
    batch = collator(examples)
    assert batch["candidate_item_index"].tolist() == [[4, 0, 5]] * 2
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model(**batch).loss.backward()
    optimizer.step()
    scores = model.item_prior_scores(model.item_prior_index(["N3", "N4", "N30"]))
    assert scores[0] > 0 > scores[1] and scores[2] == 0  # the click rose, the negative fell, the unseen item stays 0
    # without candidate_item_index the logits are the content model's alone
    with torch.no_grad():
        content = model(**{k: v for k, v in batch.items() if k != "candidate_item_index"}).logits
        with_prior = model(**batch).logits
    torch.testing.assert_close(with_prior - content, scores[[0, 2, 1]].expand(2, 3))
