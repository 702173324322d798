"""Evaluation protocols: which labels score each head, and the evaluation split of one head.

The `fer2013` head is scored against the Kaggle FER-2013 labels, the `ferplus` head against the FER+
majority vote (see :data:`PROTOCOLS`).
"""

from __future__ import annotations

import numpy as np

from ml import data as D
from ml import labels as L

HEADS = ("fer2013", "ferplus")
#: The label mode each head is evaluated with unless --labels says otherwise.
DEFAULT_PROTOCOL = {"fer2013": "fer2013", "ferplus": "ferplus-majority"}
PROTOCOLS = {
    "fer2013": "FER-2013 (Kaggle labels, 7 classes)",
    "ferplus-majority": "FER+ majority vote (Barsoum et al. 2016: single votes dropped; rows whose top choice "
    "is unknown/not-a-face or has no >50% majority excluded; 8 classes)",
    "ferplus-distribution": "FER+ vote distribution (single votes dropped; rows whose top choice is "
    "unknown/not-a-face excluded; accuracy vs the plurality emotion; 8 classes)",
}
HEAD_LABELS = {"fer2013": L.FER2013_LABELS, "ferplus": L.FERPLUS_LABELS}


def resolve_label_mode(head: str, label_mode: str | None) -> str:
    """`label_mode`, else the head's default protocol; an error when it scores another head."""
    mode = label_mode or DEFAULT_PROTOCOL[head]
    if D.head_for(mode) != head:
        raise ValueError(f"--labels {mode} scores the {D.head_for(mode)} head, but the model's head is {head}")
    return mode


def load_eval_split(data_dir: str, mode: str, split: str, head: str, limit: int | None) -> D.Split:
    """The rows of `split` valid for `mode` (the first `limit` of them), checked to carry `head`'s labels."""
    data = D.load_split(data_dir, mode, split)
    if limit:
        data = data.subset(np.arange(min(limit, len(data))))
    got = data.labels.get(head)
    if got is None:
        # class folders choose their own label set from the folder names
        raise D.DataError(f"{data_dir}: the {split} data carries {', '.join(data.labels)} labels, not {head}")
    if len(data) == 0:
        raise D.DataError(f"{data_dir}: no {split} rows are valid for {mode}")
    return data
