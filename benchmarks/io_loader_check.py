"""Why `embsum_hf.data._io.iter_records` reads CSV/TSV/JSON-lines itself instead of `datasets.load_dataset("csv" /
"json", ...)`: what each says about the same bad files (a line 150 of 201 broken five ways). No network needed.

    python benchmarks/io_loader_check.py

Measured with datasets 5.2.0: an extra CSV field is named by line (pandas' message, wrapped in
DatasetGenerationError); a missing CSV field and an invalid UTF-8 line load without any error (a null value, the
line dropped); invalid JSON and a JSON array are named by a row of pyarrow's block ("row 149", "row 0"), not the
file's line. iter_records names the file and line in every case. Parquet files are read with pyarrow and Datasets
with `Dataset.iter`, both libraries' own readers.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
import datasets  # noqa: E402
from datasets.utils.logging import set_verbosity_error  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from embsum_hf.data import iter_records  # noqa: E402

set_verbosity_error()

good = "user_id,item_id,label\n" + "".join(f"u{i},i{i},1\n" for i in range(200))
cases = {
    "extra field (csv line 150)": (
        "a.csv",
        (good.splitlines(True)[:149] + ["u,i,1,EXTRA\n"] + good.splitlines(True)[149:]),
    ),
    "missing field (csv line 150)": ("b.csv", (good.splitlines(True)[:149] + ["u,i\n"] + good.splitlines(True)[149:])),
    "invalid JSON (line 150)": (
        "c.jsonl",
        [f'{{"user_id": "u{i}", "label": 1}}\n' for i in range(149)]
        + ['{"user_id": oops}\n']
        + ['{"user_id": "u", "label": 1}\n'] * 50,
    ),
    "invalid UTF-8 (line 150)": (
        "d.jsonl",
        [f'{{"user_id": "u{i}", "label": 1}}\n' for i in range(149)]
        + [b'{"user_id": "\xff\xfe"}\n']
        + ['{"user_id": "u", "label": 1}\n'] * 50,
    ),
    "array not object (line 150)": (
        "e.jsonl",
        [f'{{"user_id": "u{i}", "label": 1}}\n' for i in range(149)]
        + ["[1, 2]\n"]
        + ['{"user_id": "u", "label": 1}\n'] * 50,
    ),
}
tmp = tempfile.mkdtemp()
for name, (file, lines) in cases.items():
    path = os.path.join(tmp, file)
    with open(path, "wb") as h:
        for line in lines:
            h.write(line if isinstance(line, bytes) else line.encode())
    builder = "csv" if file.endswith(".csv") else "json"
    try:
        ds = datasets.load_dataset(builder, data_files=path, split="train", cache_dir=os.path.join(tmp, "cache"))
        got = f"loaded {len(ds)} rows, no error" + (f"; row 149: {ds[148]}" if len(ds) > 148 else "")
    except Exception as e:
        cause = e.__cause__ or e.__context__
        got = f"{type(e).__name__}: {str(e)[:150]}" + (
            f" <- {type(cause).__name__}: {str(cause)[:150]}" if cause else ""
        )
    try:
        n = sum(1 for _ in iter_records(path))
        ours = f"read {n} records, no error"
    except Exception as e:
        ours = f"{type(e).__name__}: {str(e)[:150]}"
    print(f"== {name}\n  datasets: {got}\n  embsum:   {ours}")
