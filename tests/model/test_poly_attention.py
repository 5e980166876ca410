"""The vectorised poly-attention and score equal a plain loop over the spec's equations."""

import math

import pytest
import torch
import torch.nn.functional as F

from embsum_hf import PolyAttention, poly_relevance


def naive_poly_attention(codes, weight, states, mask):
    # alpha_a = softmax over valid rows of c_a . tanh(Z W)^T ; e_a = sum_j alpha_aj z_j
    out = torch.zeros(states.shape[0], codes.shape[0], states.shape[-1], dtype=torch.float64)
    for b in range(states.shape[0]):
        rows = [j for j in range(states.shape[1]) if mask[b, j]]
        for a in range(codes.shape[0]):
            logits = [float(codes[a] @ torch.tanh(weight @ states[b, j])) for j in rows]
            top = max(logits)
            exp = [math.exp(x - top) for x in logits]
            total = sum(exp)
            for j, e in zip(rows, exp):
                out[b, a] += e / total * states[b, j].double()
    return out


def naive_score(upe, cpe, w_s):
    # S = flatten(UPE CPE^T); w = softmax(flatten(UPE gelu(CPE W_s)^T)); score = w . S
    keys = F.gelu(cpe @ w_s.T)
    sims, gates = [], []
    for a in range(upe.shape[0]):
        for m in range(cpe.shape[0]):
            sims.append(float(upe[a] @ cpe[m]))
            gates.append(float(upe[a] @ keys[m]))
    top = max(gates)
    exp = [math.exp(g - top) for g in gates]
    return sum(e / sum(exp) * s for e, s in zip(exp, sims))


def test_poly_attention_matches_loop():
    torch.manual_seed(0)
    layer = PolyAttention(num_codes=3, hidden_size=8, projection_size=5)
    torch.nn.init.normal_(layer.codes)
    states = torch.randn(4, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]]).bool()
    got, weights = layer(states, mask)
    expected = naive_poly_attention(layer.codes.detach(), layer.projection.weight.detach(), states, mask)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)
    # padding rows get exactly zero weight (-inf before the softmax, not a small constant)
    assert torch.all(weights.masked_select(~mask[:, None, :].expand_as(weights)) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 3))


def test_poly_attention_empty_set_is_zero_not_nan():
    layer = PolyAttention(2, 4, 4)
    got, weights = layer(torch.randn(2, 3, 4), torch.tensor([[False] * 3, [True, False, False]]))
    assert torch.isfinite(got).all() and torch.isfinite(weights).all()
    assert torch.all(got[0] == 0)


def test_score_matches_loop_shared_and_per_user_items():
    torch.manual_seed(1)
    upe, cpe, w_s = torch.randn(3, 4, 8), torch.randn(5, 2, 8), torch.randn(8, 8)
    keys = F.gelu(cpe @ w_s.T)
    shared = poly_relevance(upe, cpe, keys)  # (B, N)
    assert shared.shape == (3, 5)
    for b in range(3):
        for n in range(5):
            assert shared[b, n].item() == pytest.approx(naive_score(upe[b], cpe[n], w_s), abs=1e-5)
    per_user = poly_relevance(upe, cpe[None].expand(3, -1, -1, -1), keys[None].expand(3, -1, -1, -1))
    torch.testing.assert_close(per_user, shared)


@pytest.mark.parametrize(
    "upe_shape, cpe_shape, message",
    [
        ((4, 8), (5, 2, 8), "user_embeddings"),
        ((3, 4, 8), (5, 2, 7), "width"),
        ((3, 4, 8), (2, 5, 2, 8), "B = 3"),
        ((3, 4, 8), (8,), "item_embeddings must"),
    ],
)
def test_score_rejects_mismatched_shapes(upe_shape, cpe_shape, message):
    with pytest.raises(ValueError, match=message):
        poly_relevance(torch.randn(upe_shape), torch.randn(cpe_shape), torch.randn(cpe_shape))
