"""EmbSum configuration.

Hub-facing file: it is copied next to saved weights for `trust_remote_code`, so it imports only transformers.
"""

from transformers import AutoConfig, PreTrainedConfig, T5Config
from transformers.utils import logging

logger = logging.get_logger(__name__)

SUMMARY_MODES = ("generate", "start")
# generation defaults of the user-interest summaries (`EmbSumConfig.summary_generation`)
DEFAULT_SUMMARY_GENERATION = {"no_repeat_ngram_size": 2}
# the words after which a teacher summary lists its interests ("The reader is interested in A, B, C, D and E."):
# `EmbSumConfig.summary_slot_lead`'s default, and the lead `summary_metrics` checks the slots after
DEFAULT_SUMMARY_SLOT_LEAD = "interested in"
# function words that are no interest on their own: a summary slot made only of them is malformed (`summary_metrics`)
# and well-formed decoding never starts a slot with one (`EmbSumConfig.summary_slot_lead`)
SLOT_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours out over own same she should so some such than that the their theirs them then there
    these they this those through to too under until up very was we were what when where which while who whom why
    will with would you your yours""".split()
)
# fields of earlier versions, measured without gain and removed (docs/benchmarks.md): their default, which the model
# now always behaves as, and what that is. Saved configs that carry them still load; another value is warned about.
REMOVED_FIELDS = {
    "summary_label_smoothing": (0.0, "trains the summary loss without label smoothing"),
    "summary_prefix_weight": (1.0, "weighs every summary token alike in the summary loss"),
    "summary_memory": ("sessions", "reads every session token while writing the summary"),
    "summary_guidance": (1.0, "writes summaries without the population contrast"),
}


class EmbSumConfig(PreTrainedConfig):
    r"""
    Configuration of an [`EmbSumModel`]: a T5 backbone plus the poly-attention heads of EmbSum (Zhang et al., RecSys
    2024) and SPAR (arXiv 2402.10555). `EmbSumConfig()` with no arguments describes the paper's model: a
    t5-small-shaped backbone, K = 16 user codes, M = 4 item codes.

    Each field is written here once: its default (the class attribute), its entry below (also the help of its
    `embsum train` flag) and its check (`_check_values`).

    Args:
        t5_config (`T5Config` or `dict`, *optional*):
            The backbone. Defaults to the t5-small shape (d_model 512, 6 + 6 layers, vocab 32128).
        num_user_codes (`int`, defaults to 16):
            K, the number of learned context codes of the User Poly-Embedding (UPE).
        num_item_codes (`int`, defaults to 4):
            M, the number of learned context codes of the Content Poly-Embedding (CPE).
        poly_projection_size (`int`, *optional*):
            Width of the poly-attention key projection `W_u` / `W_c`; defaults to `d_model`.
        max_history_items (`int`, defaults to 60):
            Latest history items kept per user; older ones are dropped by the processor.
        session_max_tokens (`int`, defaults to 512):
            Token budget of one session (one T5 encoder pass over several history items).
        session_max_items (`int`, *optional*):
            Most history items one session holds (default: as many as fit in `session_max_tokens`, the paper's
            packing). `1` encodes every history item alone, as candidates are encoded: a distinct item is then
            encoded once per batch however many histories and candidate lists hold it (our choice for small
            from-scratch models, where it trains faster).
        item_max_tokens (`int`, defaults to 64):
            Token budget of one item's text, its item-start token included.
        summary_max_tokens (`int`, defaults to 64):
            Longest user-interest summary, end-of-sequence token included (teacher targets and generation).
        summary_loss_weight (`float`, defaults to 1.0):
            lambda in `L = L_NCE + lambda * L_sum`.
        summary_mode (`str`, defaults to `"generate"`):
            How `h_sum` is taken for a user without a teacher summary (always the case at inference):
            `"generate"` lets the decoder greedily write its summary and reads the state at its end (the paper's
            reading, our choice); `"start"` reads the decoder start-token state (no generation; cheaper), in training
            as well, so training and serving read the same state (the summary loss is unchanged).
        item_prior_ids (`list[str]`, *optional*):
            Optional, off by default (the paper's model has none): the items that get a learned **item prior**, a
            per-item bias added to the poly-attention score, for catalogues whose items repeat between training and
            serving. Items not in the list (cold start) get 0, so their ranking is the content model's alone.
        summary_generation (`dict`, *optional*):
            Generation settings of the summaries, as `GenerationConfig` fields (`num_beams`, `no_repeat_ngram_size`,
            `repetition_penalty`, ...); they become the defaults of the decoder's `generation_config`, which
            [`EmbSumModel.generate_summary`] uses. Defaults to `{"no_repeat_ngram_size": 2}`, so that a summary does
            not name the same interest twice.
        summary_history_boost (`float`, defaults to 16.0):
            A soft copy mechanism for the summaries (our choice): while writing, every word that occurs in the user's
            own history text gains `summary_history_boost` in next-token log-probability (see `HistoryTokenBoost`;
            given the processor, a word counts in any letter case), scaled by how often the user read it relative to
            their most frequent word; a word already written gains no more. 0.0 is plain decoding; above 0 the summary
            names what this user read rather than what everybody reads (measured in the README: without it a small
            model trained from scratch writes one summary for everybody). Only the written summaries change: the
            ranking's `h_sum` is read from plain greedy decoding.
        summary_history_boost_plausibility (`float`, defaults to 0.01):
            Only tokens at least this many times as likely as the decoder's best gain from `summary_history_boost`
            (contrastive decoding's plausibility constraint), so the template the decoder is sure of stays intact.
        summary_copy (`bool`, defaults to `False`):
            A copy mechanism learned in training (pointer-generator, See et al. 2017; see `SummaryCopy`): at each step
            of the summary a gate `p_gen`, computed from the decoder state, a copy attention's context over the
            session tokens the decoder reads and the decoder's input token, mixes the vocabulary distribution with the
            copy attention scattered onto those tokens' ids, so the decoder can name the words of this user's history
            that it has not learned to write. Trained by the summary loss (the loss is the mixture's NLL) and used
            whenever the decoder writes (`generate_summary`, and the `"generate"` summary mode's `h_sum`); `h_sum`
            itself is unchanged (the decoder state). Its layers are new (a `d x d` query and a `3d -> 1` gate) and
            train at the new layers' learning rate.
        summary_session_positions (`bool`, defaults to `False`):
            The decoder reads where each session stands in the history (our choice; see `SessionPositions`): a learned
            embedding per session index, oldest first, is added to the session states the summary decoder and its
            copy attention read. T5's cross-attention has no position bias, so without it the decoder reads the
            history as an unordered bag of tokens. The ranking's history rows (the `<sos>` states) are unchanged.
            A new layer (`max_history_items x d`, zero at initialisation: the model starts as the one without it).
        summary_slot_lead (`str`, *optional*, defaults to `"interested in"`):
            Well-formed template summaries at generation: after these words, the interest slots of "A, B, C, D and
            E." are never empty or only stop-words, start with no stop-word and repeat no word (see
            `WellFormedSlots`; applied by `generate_summary` given the processor). `None` or `""` turns it off;
            summaries without the lead are left alone. Only the written summaries change: the ranking's `h_sum` is
            read from plain greedy decoding.
        item_start_token_id (`int`, defaults to 32100):
            Id of the `<sos>` token that opens every item's text; its encoder states are the history rows of the
            UPE. 32100 is the first free id after the T5 tokenizer's 32100 tokens.
    """

    model_type = "embsum"
    sub_configs_defaults = {"t5_config": T5Config}

    t5_config: dict | T5Config | None = None
    num_user_codes: int = 16
    num_item_codes: int = 4
    poly_projection_size: int | None = None
    max_history_items: int = 60
    session_max_tokens: int = 512
    session_max_items: int | None = None
    item_max_tokens: int = 64
    summary_max_tokens: int = 64
    summary_loss_weight: float | int = 1.0
    summary_mode: str = "generate"
    item_prior_ids: list[str] | None = None
    summary_generation: dict | None = None
    summary_history_boost: float | int = 16.0
    summary_history_boost_plausibility: float | int = 0.01
    summary_copy: bool = False
    summary_session_positions: bool = False
    summary_slot_lead: str | None = DEFAULT_SUMMARY_SLOT_LEAD
    item_start_token_id: int = 32100
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        # a sampling setting of training, not of the model: configs saved before it moved to the training arguments
        # still load
        kwargs.pop("num_negatives", None)
        for name, (default, now) in REMOVED_FIELDS.items():
            value = kwargs.pop(name, default)
            if value != default:
                logger.warning(
                    "EmbSumConfig: %s=%r was removed in this version (measured no gain); the model now %s",
                    name,
                    value,
                    now,
                )
        super().__post_init__(**kwargs)
        # A T5Config built in code has no decoder start token; T5 starts decoding with the pad token.
        if getattr(self.t5_config, "decoder_start_token_id", None) is None:
            self.t5_config.decoder_start_token_id = self.t5_config.pad_token_id
        if self.summary_generation is None:
            self.summary_generation = dict(DEFAULT_SUMMARY_GENERATION)
        if self.poly_projection_size is None:
            self.poly_projection_size = self.t5_config.d_model
        self._check_values()

    def _check_values(self) -> None:
        # the backbone's shape: transformers does not check a T5Config's values (`embsum train` builds one from flags)
        for name in ("d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads"):
            value = getattr(self.t5_config, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EmbSumConfig.t5_config.{name} must be a positive integer, got {value!r}")
        dropout = self.t5_config.dropout_rate
        if not 0 <= dropout < 1:  # NaN too
            raise ValueError(f"EmbSumConfig.t5_config.dropout_rate must be in [0, 1), got {dropout!r}")
        positive = (
            "num_user_codes",
            "num_item_codes",
            "poly_projection_size",
            "max_history_items",
            "session_max_tokens",
            "item_max_tokens",
            "summary_max_tokens",
            "session_max_items",
        )
        for name in positive:
            value = getattr(self, name)
            if value is None and name == "session_max_items":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EmbSumConfig.{name} must be a positive integer, got {value!r}")
        if self.item_max_tokens + 1 > self.session_max_tokens:
            raise ValueError(
                f"EmbSumConfig.item_max_tokens ({self.item_max_tokens}) must leave room for the end-of-sequence token "
                f"within session_max_tokens ({self.session_max_tokens})"
            )
        if not self.summary_loss_weight >= 0:  # `not >=`: NaN too
            raise ValueError(f"EmbSumConfig.summary_loss_weight must be >= 0, got {self.summary_loss_weight!r}")
        if not 0 <= self.summary_history_boost < float("inf"):
            raise ValueError(
                f"EmbSumConfig.summary_history_boost must be a finite number >= 0, got {self.summary_history_boost!r}"
            )
        if not 0 <= self.summary_history_boost_plausibility <= 1:
            raise ValueError(
                "EmbSumConfig.summary_history_boost_plausibility must be in [0, 1], got "
                f"{self.summary_history_boost_plausibility!r}"
            )
        for name in ("summary_copy", "summary_session_positions"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"EmbSumConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if self.summary_slot_lead is not None and not isinstance(self.summary_slot_lead, str):
            raise ValueError(
                f"EmbSumConfig.summary_slot_lead must be a string or None, got {self.summary_slot_lead!r}"
            )
        if not isinstance(self.summary_generation, dict):
            raise ValueError(f"EmbSumConfig.summary_generation must be a dict, got {self.summary_generation!r}")
        if self.summary_mode not in SUMMARY_MODES:
            raise ValueError(f"EmbSumConfig.summary_mode must be one of {SUMMARY_MODES}, got {self.summary_mode!r}")
        if not 0 <= self.item_start_token_id < self.t5_config.vocab_size:
            raise ValueError(
                f"EmbSumConfig.item_start_token_id ({self.item_start_token_id}) must be a token id below the "
                f"backbone's vocab_size ({self.t5_config.vocab_size})"
            )
        if self.item_start_token_id in (self.t5_config.pad_token_id, self.t5_config.eos_token_id):
            raise ValueError(
                f"EmbSumConfig.item_start_token_id ({self.item_start_token_id}) must differ from the pad and "
                "end-of-sequence ids"
            )

    @property
    def hidden_size(self) -> int:
        return self.t5_config.d_model


# saved configs carry `auto_map`, so AutoConfig loads them with trust_remote_code; in the package (not in a repo's copy
# loaded as remote code) AutoConfig also knows the "embsum" model type
EmbSumConfig.register_for_auto_class()
if __name__.startswith("embsum_hf."):
    AutoConfig.register(EmbSumConfig.model_type, EmbSumConfig, exist_ok=True)

__all__ = ["EmbSumConfig"]
