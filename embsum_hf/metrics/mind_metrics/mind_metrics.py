"""MIND ranking metrics as a local `evaluate` module: `evaluate.load("path/to/mind_metrics")` works offline.

The formulas live in `embsum_hf.metrics.mind`; this module only adapts them to the `evaluate.Metric` interface.
"""

import datasets
import evaluate

from embsum_hf.metrics.mind import compute_mind_metrics

_DESCRIPTION = """\
The official MIND news-recommendation metrics, computed per impression and averaged over impressions: AUC, MRR,
nDCG@5 and nDCG@10 (fractions in [0, 1]). Impressions whose labels are all equal are skipped for every metric and
counted in `num_skipped_one_class`; `num_impressions` is the number of impressions averaged over.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: list of impressions, each a list of candidate scores (float, higher = more likely clicked).
    references: list of impressions, each a list of 0/1 click labels, same lengths as `predictions`.
Returns:
    dict with `auc`, `mrr`, `ndcg@5`, `ndcg@10`, `num_impressions`, `num_skipped_one_class`.
Example:
    >>> metric = evaluate.load("embsum_hf/metrics/mind_metrics")
    >>> metric.compute(predictions=[[0.9, 0.1, 0.5]], references=[[0, 1, 1]])["auc"]
    0.0
"""

_CITATION = """\
@inproceedings{wu2020mind,
  title={MIND: A Large-scale Dataset for News Recommendation},
  author={Wu, Fangzhao and Qiao, Ying and Chen, Jiun-Hung and Wu, Chuhan and Qi, Tao and Lian, Jianxun and Liu, Danyang
          and Xie, Xing and Gao, Jianfeng and Wu, Winnie and Zhou, Ming},
  booktitle={ACL},
  year={2020}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MindMetrics(evaluate.Metric):
    """AUC / MRR / nDCG@5 / nDCG@10 of ranked impressions, as defined by the official MIND scorer."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.List(datasets.Value("float64")),
                    "references": datasets.List(datasets.Value("int32")),
                }
            ),
            reference_urls=["https://msnews.github.io/"],
        )

    def _compute(self, predictions, references):
        return compute_mind_metrics(predictions, references)
