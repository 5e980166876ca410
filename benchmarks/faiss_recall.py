"""FAISS prefilter vs exact ranking on 100k synthetic items: recall@10 and median speed ratio.

Data (synthetic, with structure; random-init model embeddings would be meaningless here): 1000 topic centres in
d = 512; each item belongs to one topic, its M = 4 CPE codes are its topic centre plus item noise plus code noise;
score keys are `gelu(CPE W_s)` with a Xavier-initialised `W_s` as in the model. Each user follows 3 topics; each of
its K = 16 UPE codes is one of those centres plus noise. Exact: `top_k_scores` over all items. Prefilter:
`FaissPrefilter` at its default settings, then exact re-ranking of the candidates.
Usage: `python benchmarks/faiss_recall.py [--quick]`.
"""

from __future__ import annotations

import argparse
import time

import torch
from serving_speed import compare  # same folder

from embsum_hf.serving import FaissPrefilter, recall_at_k, rerank, top_k_scores


def synthetic(num_items: int, num_users: int, dim: int = 512, topics: int = 1000, seed: int = 0):
    """Clustered CPEs `(N, 4, d)`, their score keys and UPEs `(B, 16, d)` (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    scale = dim**-0.25  # dot products of order 1
    centres = randn(topics, dim)
    topic = torch.randint(0, topics, (num_items,), generator=generator)
    items = centres[topic] + 0.7 * randn(num_items, dim)  # (N, d)
    cpe = scale * (items[:, None, :] + 0.5 * randn(num_items, 4, dim))  # (N, M, d)
    projection = torch.empty(dim, dim)
    torch.nn.init.xavier_uniform_(projection, generator=generator)
    keys = torch.nn.functional.gelu(cpe @ projection)
    interests = torch.randint(0, topics, (num_users, 3), generator=generator)
    picks = interests.gather(1, torch.randint(0, 3, (num_users, 16), generator=generator))
    upe = scale * (centres[picks] + 0.7 * randn(num_users, 16, dim))  # (B, K, d)
    return cpe, keys, upe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer users (the catalogue stays at 100k items)")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (see serving_speed.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    num_users = 16 if args.quick else 64
    cpe, keys, upe = synthetic(args.items, num_users)
    print(
        f"{args.items} items x {cpe.shape[1]} codes x d {cpe.shape[2]}, {num_users} users x {upe.shape[1]} codes; "
        f"torch threads {torch.get_num_threads()}"
    )

    start = time.perf_counter()
    prefilter = FaissPrefilter(cpe)
    build = time.perf_counter() - start
    print(f"FAISS IVF build: {build:.1f} s (nlist {prefilter.nlist}, nprobe {prefilter.nprobe})")

    _, exact = top_k_scores(upe, cpe, keys, 10)
    candidates = prefilter.candidates(upe, 10)
    _, approximate = rerank(upe, cpe, keys, candidates, 10)
    print(
        f"recall@10 vs exact ranking: {recall_at_k(approximate, exact):.4f} "
        f"({candidates.shape[1]} candidates per user = {candidates.shape[1] / args.items:.2%} of the items)"
    )

    users = upe[:1]  # one request, as served
    prefiltered = lambda: rerank(users, cpe, keys, prefilter.candidates(users, 10), 10)  # noqa: E731
    fast, slow, ratio = compare(prefiltered, lambda: top_k_scores(users, cpe, keys, 10), args.repeats)
    print(
        f"one user: prefilter + re-rank {fast * 1e3:.1f} ms, exact {slow * 1e3:.1f} ms, "
        f"median speed-up {1 / ratio:.1f}x"
    )
    batch = upe[:16]
    fast, slow, ratio = compare(
        lambda: rerank(batch, cpe, keys, prefilter.candidates(batch, 10), 10),
        lambda: top_k_scores(batch, cpe, keys, 10),
        args.repeats,
    )
    print(
        f"16 users: prefilter + re-rank {fast * 1e3:.1f} ms, exact {slow * 1e3:.1f} ms, "
        f"median speed-up {1 / ratio:.1f}x"
    )


if __name__ == "__main__":
    main()
