"""What the accuracy benchmarks (`accuracy_movielens.py`, `accuracy_books.py`, `summary_quality.py`) share, imported
by them as `accuracy.<module>` (the scripts' folder is on `sys.path`); this folder holds no script of its own.

    budget          `TimeBudget` (the CPU-time budget of one training loop), `Optimisation` (the shared optimiser)
    results         `Result`, `METRICS`, a seed's rows, `aggregate`/`run_seeds` over seeds, the printed table
    baselines       TF-IDF, MovieLens' item mean rating, the fitted item prior alone
    nrms            NRMS and its training loop under the budget
    embsum_runs     EmbSum from the package recipe under the budget, the heuristic teacher's summaries
    movielens_data  MovieLens 100K's folder, run arguments and the "reads" protocol
"""
