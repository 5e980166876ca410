"""One on-disk format for pre-computed user and item poly-embeddings: sharded safetensors plus a JSON manifest.

Layout of a store folder::

    store.json                  manifest: kind, model fingerprint, dtype, tensor shapes, shards, complete
    ids.json                    entry ids (item or user ids), in row order
    .embsum.lock                held by the job writing the store (`embsum_hf.utils.folder_lock`); holds its pid
    shard-00000.safetensors     rows [0, shard_size): tensors `embeddings` (+ `keys` for items); its metadata holds
    shard-00001.safetensors     the shard's ids and a content key (model fingerprint + dtype + input token ids)

Shards are written atomically (temporary file + rename), so a shard file on disk is always complete; a rerun of the
same job skips every shard whose content key still matches, which makes the encoding jobs resumable after a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..utils import atomic_write_text, make_readable, model_fingerprint

logger = logging.getLogger(__name__)

MANIFEST_NAME = "store.json"
IDS_NAME = "ids.json"
FORMAT_VERSION = 1
STORE_KINDS = ("items", "users")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class StoreMismatchError(ValueError):
    """A store was written by another model (fingerprint), or is of the wrong kind, or is incomplete."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


def shard_range(index: int, shard_size: int, total: int) -> tuple[int, int]:
    """Rows `[start, stop)` of shard `index` of `total` rows in shards of `shard_size`."""
    start = index * shard_size
    return start, min(start + shard_size, total)


def content_key(fingerprint: str, kind: str, dtype: str, ids: Sequence[str], token_ids: Sequence) -> str:
    """What a shard was computed from: rerunning a job reuses a shard only when this key is unchanged."""
    payload = json.dumps([fingerprint, kind, dtype, list(ids), token_ids], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def check_finite(tensor: torch.Tensor, ids: Sequence[str], what: str) -> None:
    """Refuse a tensor `(rows, ...)` with NaN or infinite values, naming the rows' ids: a non-finite embedding would
    score NaN against everything and rank first for every user."""
    bad = ~torch.isfinite(tensor.reshape(len(tensor), -1)).all(1) if tensor.numel() else torch.zeros(0, dtype=bool)
    if bool(bad.any()):
        rows = bad.nonzero().flatten().tolist()
        names = [ids[row] for row in rows[:5]] if len(ids) == len(tensor) else rows[:5]
        raise ValueError(f"{what}: {len(rows)} entries hold NaN or infinite values, e.g. {names}")


def _is_count(value, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def read_manifest(path: str | os.PathLike) -> dict:
    """
    The one validation of a store manifest (`store.json`), used by every reader: a JSON object with this code's
    `format_version`, a known `kind` and `dtype`, a boolean `complete`, counts that agree (`num_shards` equals the
    shard list and `ceil(num_entries / shard_size)`), entry shapes, and shards named `shard-NNNNN.safetensors`
    inside the folder (never `../` or an absolute path). Anything else is a `StoreMismatchError` naming the file.
    """
    path = Path(path)
    file = path / MANIFEST_NAME
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not an embedding store (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise StoreMismatchError(f"{file}: not valid JSON ({error})") from None

    def bad(message: str) -> StoreMismatchError:
        return StoreMismatchError(f"{file}: {message}")

    if not isinstance(manifest, dict):
        raise bad(f"expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise bad(f"store format {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}")
    if manifest.get("kind") not in STORE_KINDS:
        raise bad(f"'kind' must be one of {list(STORE_KINDS)}, got {manifest.get('kind')!r}")
    if not isinstance(manifest.get("complete"), bool):
        raise bad(f"'complete' must be true or false, got {manifest.get('complete')!r}")
    if manifest.get("dtype") not in DTYPES:
        raise bad(f"'dtype' must be one of {sorted(DTYPES)}, got {manifest.get('dtype')!r}")
    if not isinstance(manifest.get("fingerprint"), str):
        raise bad("'fingerprint' must be a string")
    entries, size, count = manifest.get("num_entries"), manifest.get("shard_size"), manifest.get("num_shards")
    if not (_is_count(entries) and _is_count(size, 1) and _is_count(count)):
        raise bad("'num_entries', 'shard_size' and 'num_shards' must be non-negative integers (shard_size positive)")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or len(shards) != count or count != -(-entries // size):
        listed = len(shards) if isinstance(shards, list) else repr(shards)
        raise bad(f"'num_shards' {count} disagrees with the shard list ({listed}) or num_entries / shard_size")
    for index, shard in enumerate(shards):
        if shard != shard_name(index):  # a plain name in this folder: no '../', no absolute path
            raise bad(f"shards[{index}] must be {shard_name(index)!r}, got {shard!r}")
    shapes = manifest.get("shapes")

    def valid_shape(shape) -> bool:
        return isinstance(shape, list) and bool(shape) and all(_is_count(n) for n in shape) and shape[0] == entries

    if not isinstance(shapes, dict) or "embeddings" not in shapes or not all(map(valid_shape, shapes.values())):
        raise bad(f"'shapes' must map tensor names (embeddings first) to [num_entries, codes, d], got {shapes!r}")
    return manifest


def read_ids(path: Path, num_entries: int) -> list[str]:
    """`ids.json` of a store: `num_entries` distinct strings (a repeated id would rank as one item many times)."""
    file = path / IDS_NAME
    if file.exists() and not file.is_file():  # a FIFO would block the read forever
        raise StoreMismatchError(f"{file}: not a regular file")
    try:
        ids = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreMismatchError(f"{path}: {IDS_NAME} is missing") from None
    except (ValueError, RecursionError) as error:
        raise StoreMismatchError(f"{file}: not valid JSON ({error})") from None
    if not isinstance(ids, list) or not all(isinstance(entry, str) for entry in ids):
        raise StoreMismatchError(f"{file}: expected a JSON array of id strings")
    if len(ids) != num_entries:
        raise StoreMismatchError(f"{file} lists {len(ids)} ids, the manifest {num_entries}")
    seen: set[str] = set()
    repeated = [entry for entry in ids if entry in seen or seen.add(entry)]
    if repeated:
        raise StoreMismatchError(f"{file}: {len(repeated)} ids repeat, e.g. {repeated[:5]}; ids must be unique")
    return ids


def _open_shard(path: Path):
    """`safe_open` of one shard file; a missing, truncated or foreign file is a `StoreMismatchError` naming it, and so
    is anything but a regular file (opening a FIFO would block forever)."""
    if path.exists() and not path.is_file():
        raise StoreMismatchError(f"{path}: not a regular file (a shard must be a safetensors file)")
    try:
        return safe_open(str(path), framework="pt")
    except FileNotFoundError:
        raise StoreMismatchError(f"{path}: shard file is missing") from None
    except Exception as error:  # safetensors' SafetensorError (not an OSError/ValueError) for damaged bytes
        raise StoreMismatchError(f"{path}: unreadable shard ({error})") from None


@dataclass
class ShardedStoreWriter:
    """
    Writes one store, shard by shard, from any number of processes (each writes its own shards; the main process
    writes the manifest). Used by the encoding jobs in `embsum_hf.serving.encode`.
    """

    path: Path
    kind: str
    ids: list[str]
    fingerprint: str
    dtype: str
    entry_shapes: dict[str, tuple[int, ...]]  # tensor name -> shape of one entry, e.g. {"embeddings": (M, d)}
    shard_size: int

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.kind not in STORE_KINDS:
            raise ValueError(f"kind must be one of {STORE_KINDS}, got {self.kind!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be positive, got {self.shard_size}")
        seen: set[str] = set()
        duplicates = [i for i in self.ids if i in seen or seen.add(i)]
        if duplicates:
            raise ValueError(f"{len(duplicates)} duplicate {self.kind} ids, e.g. {duplicates[:5]}; ids must be unique")
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def num_shards(self) -> int:
        return -(-len(self.ids) // self.shard_size)

    def shard_range(self, index: int) -> tuple[int, int]:
        return shard_range(index, self.shard_size, len(self.ids))

    def is_done(self, index: int, key: str) -> bool:
        """Whether shard `index` exists on disk and was computed from the same inputs (content key)."""
        path = self.path / shard_name(index)
        if not path.is_file():
            return False
        try:
            with safe_open(str(path), framework="pt") as handle:
                return (handle.metadata() or {}).get("content_key") == key
        except Exception as error:  # a foreign or damaged file is recomputed, not trusted
            logger.warning("recomputing unreadable shard %s (%s)", path, error)
            return False

    def write(self, index: int, tensors: dict[str, torch.Tensor], key: str) -> None:
        """Write shard `index` atomically: a crash leaves either the old file or the complete new one."""
        start, stop = self.shard_range(index)
        for name, shape in self.entry_shapes.items():
            expected = (stop - start, *shape)
            if tuple(tensors[name].shape) != expected:
                raise ValueError(
                    f"shard {index} tensor {name!r} has shape {tuple(tensors[name].shape)}, expected {expected}"
                )
        for name in self.entry_shapes:
            check_finite(tensors[name], self.ids[start:stop], f"{self.kind} {name} computed for shard {index}")
        path = self.path / shard_name(index)
        tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
        data = {name: tensors[name].to("cpu", DTYPES[self.dtype]).contiguous() for name in self.entry_shapes}
        metadata = {"content_key": key, "ids": json.dumps(self.ids[start:stop]), "fingerprint": self.fingerprint}
        save_file(data, str(tmp), metadata=metadata)
        make_readable(tmp)  # save_file writes 0600: a server running as another user reads the store
        with open(tmp, "rb") as handle:  # durable before it becomes visible
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def manifest(self, complete: bool) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "dtype": self.dtype,
            "num_entries": len(self.ids),
            "shapes": {name: [len(self.ids), *shape] for name, shape in self.entry_shapes.items()},
            "shard_size": self.shard_size,
            "num_shards": self.num_shards,
            "shards": [shard_name(i) for i in range(self.num_shards)],
            "complete": complete,
        }

    def begin(self) -> None:
        """Main process, before encoding: mark the store incomplete so nothing loads it half-written. A folder that
        holds a store of the other kind (e.g. users, for an item job) is refused, never overwritten."""
        existing = self.path / MANIFEST_NAME
        if existing.is_file():
            try:
                kind = json.loads(existing.read_text()).get("kind")
            except (ValueError, AttributeError):  # damaged: the job rewrites it
                kind = None
            if kind in STORE_KINDS and kind != self.kind:
                raise StoreMismatchError(
                    f"{self.path} holds a {kind} store; refusing to overwrite it with {self.kind} (use another folder)"
                )
        atomic_write_text(self.path / MANIFEST_NAME, json.dumps(self.manifest(complete=False), indent=2) + "\n")

    def fail(self, reason: str) -> None:
        """Main process, after the job stopped with an error: the manifest stays incomplete and records `reason`, so
        a reader says the job failed (and why) rather than that it is running or was interrupted."""
        manifest = {**self.manifest(complete=False), "failed": reason}
        atomic_write_text(self.path / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")

    def finalize(self) -> None:
        """Main process, after every rank finished: drop leftovers of earlier runs, write ids and the manifest."""
        missing = [shard_name(i) for i in range(self.num_shards) if not (self.path / shard_name(i)).is_file()]
        if missing:
            raise RuntimeError(f"{self.path}: shards {missing[:5]} are missing; did a process fail?")
        expected = {shard_name(i) for i in range(self.num_shards)}
        for leftover in self.path.glob("*shard-*.safetensors*"):
            if leftover.name not in expected:  # temporary files of killed runs, shards of a larger earlier store
                leftover.unlink()
        atomic_write_text(self.path / IDS_NAME, json.dumps(self.ids) + "\n")
        atomic_write_text(self.path / MANIFEST_NAME, json.dumps(self.manifest(complete=True), indent=2) + "\n")


@dataclass
class EmbeddingStore:
    """
    A complete store of user or item poly-embeddings (see the module docstring for the layout).

    Tensors load lazily on first access and stay in memory: `embeddings` `(n, M, d)` and `keys` `(n, M, d)`
    (`gelu(CPE W_s)`) for items, `embeddings` `(n, K, d)` for users, in the stored dtype. Row `i` is entry `ids[i]`.
    """

    path: Path
    manifest: dict
    ids: list[str]
    _tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _positions: dict[str, int] | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, expected_fingerprint: str | None = None, kind: str | None = None
    ) -> EmbeddingStore:
        """
        Open a store. With `expected_fingerprint` (`model_fingerprint(model)`), a store written by another model is
        refused with `StoreMismatchError`; so is an incomplete store (a job still running or interrupted) and, with
        `kind`, a store of the other kind.
        """
        path = Path(path)
        manifest = read_manifest(path)
        if not manifest["complete"]:
            if isinstance(manifest.get("failed"), str):  # recorded by `ShardedStoreWriter.fail`
                raise StoreMismatchError(
                    f"{path} is incomplete: its encoding job failed ({manifest['failed']}); fix that cause, then "
                    "encode again"
                )
            raise StoreMismatchError(
                f"{path} is incomplete (its encoding job is running or was interrupted); rerun the job to finish it"
            )
        if kind is not None and manifest["kind"] != kind:
            raise StoreMismatchError(f"{path} holds {manifest['kind']} embeddings, expected {kind}")
        if expected_fingerprint is not None and manifest["fingerprint"] != expected_fingerprint:
            raise StoreMismatchError(
                f"{path} was written by model {manifest['fingerprint']}, but the model in use is "
                f"{expected_fingerprint}; "
                "re-encode the store with this model"
            )
        ids = read_ids(path, manifest["num_entries"])
        return cls(path=path, manifest=manifest, ids=ids)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.manifest["dtype"]]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_shards(self) -> int:
        return self.manifest["num_shards"]

    def shard_range(self, index: int) -> tuple[int, int]:
        """Rows `[start, stop)` of shard `index`."""
        return shard_range(index, self.manifest["shard_size"], len(self.ids))

    def shard(self, index: int, name: str = "embeddings") -> torch.Tensor:
        """Tensor `name` of shard `index` alone, `(rows, codes, d)`: what a job streaming a large store holds."""
        if name not in self.manifest["shapes"]:
            raise KeyError(f"{self.path} ({self.kind}) stores {sorted(self.manifest['shapes'])}, not {name!r}")
        start, stop = self.shard_range(index)
        path = self.path / self.manifest["shards"][index]
        with _open_shard(path) as handle:
            try:
                tensor = handle.get_tensor(name)
            except Exception as error:  # safetensors raises its own error types for damaged bytes
                raise StoreMismatchError(f"{path}: unreadable tensor {name!r} ({error})") from None
        expected = (stop - start, *self.manifest["shapes"][name][1:])
        if tuple(tensor.shape) != expected:
            raise StoreMismatchError(f"{path}: {name} has shape {tuple(tensor.shape)}, the manifest says {expected}")
        check_finite(tensor, self.ids[start:stop], f"{path}: {name}")
        return tensor

    def content_digest(self) -> str:
        """sha256 over the shards' content keys (model, dtype, ids and input tokens of each): what the store holds,
        without reading its tensors. Equal digests mean the same embeddings."""
        keys = []
        for shard in self.manifest["shards"]:
            with _open_shard(self.path / shard) as handle:
                keys.append((handle.metadata() or {}).get("content_key"))
        return hashlib.sha256(json.dumps([self.fingerprint, self.manifest["dtype"], keys]).encode()).hexdigest()

    def tensor(self, name: str) -> torch.Tensor:
        """Stored tensor `name` of all rows, `(n, codes, d)`, loaded from the shards once."""
        if name not in self.manifest["shapes"]:
            raise KeyError(f"{self.path} ({self.kind}) stores {sorted(self.manifest['shapes'])}, not {name!r}")
        if name not in self._tensors:
            parts = [self.shard(index, name) for index in range(self.num_shards)]
            shape = tuple(self.manifest["shapes"][name])
            loaded = torch.cat(parts) if parts else torch.empty(shape, dtype=self.dtype)
            if tuple(loaded.shape) != shape:
                raise StoreMismatchError(
                    f"{self.path}: {name} has shape {tuple(loaded.shape)}, the manifest says {shape}"
                )
            self._tensors[name] = loaded
        return self._tensors[name]

    @property
    def embeddings(self) -> torch.Tensor:
        """`(n, M, d)` item CPEs or `(n, K, d)` user UPEs."""
        return self.tensor("embeddings")

    @property
    def keys(self) -> torch.Tensor:
        """`(n, M, d)` item score keys `gelu(CPE W_s)` (item stores only)."""
        return self.tensor("keys")

    @property
    def prior(self) -> torch.Tensor | None:
        """`(n,)` the item prior of a model that has one (`EmbSumConfig.item_prior_ids`; 0 for items without a
        learned prior), None for stores without it."""
        return self.tensor("prior")[:, 0] if "prior" in self.manifest["shapes"] else None

    def positions(self, ids: Sequence[str], *, skip_unknown: bool = False) -> torch.Tensor:
        """Row numbers of the given entry ids; an unknown id is a `KeyError` naming it, or left out with
        `skip_unknown` (e.g. history items that are not in an item store)."""
        if self._positions is None:
            self._positions = {entry: row for row, entry in enumerate(self.ids)}
        missing = [entry for entry in ids if entry not in self._positions]
        if missing and not skip_unknown:
            raise KeyError(f"{len(missing)} ids not in {self.path}, e.g. {missing[:5]}")
        return torch.tensor([self._positions[entry] for entry in ids if entry in self._positions], dtype=torch.long)

    def disk_bytes(self) -> int:
        """Bytes of the shard files (tensors plus their small headers)."""
        return sum((self.path / shard).stat().st_size for shard in self.manifest["shards"])


__all__ = [
    "DTYPES",
    "EmbeddingStore",
    "ShardedStoreWriter",
    "StoreMismatchError",
    "check_finite",
    "content_key",
    "model_fingerprint",
    "read_manifest",
    "shard_name",
    "shard_range",
]
