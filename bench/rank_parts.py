"""In-process cost of one fresh ranking's Python part: cached rows -> candidates -> ``rank_feed``.

Builds one user's ~400 cached network rows as ``bench/feed_scale.py`` seeds them (``--face-share`` of posts with a
face reading, ``--text-share`` with text affect, 500 followed authors), then times, for a sad and an angry mood
(policy repair, strength 0.5, as the feed benchmark's users): ``candidates_from_rows`` and the whole ranking
(candidates + ``rank_feed``), and counts the young-generation garbage collections per ranking with ``gc.freeze()``
after start-up (as ``config/wsgi.py``). Runs on an earlier checkout too (``PYTHONPATH`` pointing at it), whose rows
have no text fields, for a comparison with the same rows. No database is opened.

Usage::

    .venv/bin/python bench/rank_parts.py [--text-share 0.7] [--repeat 2000] [--label L] [--out bench/results/rank_parts]
    cd OTHER_CHECKOUT && PYTHONPATH=. python PATH/TO/bench/rank_parts.py --label L --out ...   # another commit
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if not any(Path(p, "recommender").is_dir() for p in sys.path[1:] if p):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
checkout = next(Path(p) for p in sys.path if p and Path(p, "recommender").is_dir())
os.environ.setdefault(  # earlier checkouts kept the settings in the feedmood package
    "DJANGO_SETTINGS_MODULE", "config.settings" if (checkout / "config").is_dir() else "feedmood.settings"
)

import django  # noqa: E402

django.setup()

from recommender import selectors  # noqa: E402
from recommender.mood import Mood  # noqa: E402
from recommender.ranking import rank_feed  # noqa: E402

USER_ID = 1
MOODS = {
    "sad": Mood(known=True, label="sadness", valence=-0.75, arousal=-0.25, confidence=0.75),
    "angry": Mood(known=True, label="anger", valence=-0.5, arousal=0.75, confidence=0.75),
}


def cached_rows(n: int, face_share: float, text_share: float, seed: int = 7) -> list[tuple[Any, ...]]:
    """``n`` network rows (10 fields) newest first, as the candidate cache holds them."""
    rng = random.Random(seed)
    now = time.time()
    rows = []
    for i in range(n):
        face = rng.random() < face_share
        text = rng.random() < text_share
        rows.append(
            (
                10_000 + i,
                USER_ID if i % 97 == 0 else 2 + rng.randrange(500),
                now - i * 600.0,
                rng.randrange(40),
                round(rng.uniform(-1, 1), 3) if face else None,
                round(rng.uniform(-1, 1), 3) if face else None,
                round(rng.uniform(0.6, 0.95), 3) if face else None,
                round(rng.uniform(-1, 1), 3) if text else None,
                None,
                0.56 if text else None,
            )
        )
    return rows


def to_candidates(rows: list[tuple[Any, ...]]) -> list[Any]:
    if hasattr(selectors, "candidates_from_rows"):
        return selectors.candidates_from_rows(rows, USER_ID)
    return [selectors.candidate_from_row(row[:7], USER_ID) for row in rows]  # before text affect: 7 fields


def timed(fn: Any, repeat: int) -> dict[str, float]:
    """Median and p95 ms of ``repeat`` calls (``bench/feed_micro.py`` has the same helper, but importing it would
    set up Django from this checkout, not from the one measured)."""
    cuts = statistics.quantiles([_call_ms(fn) for _ in range(repeat)], n=20)
    return {"median_ms": round(cuts[9], 4), "p95_ms": round(cuts[18], 4)}


def _call_ms(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def young_collections(fn: Any, repeat: int) -> float:
    """Young-generation (gen 0) collections per call of ``fn``."""
    runs = [0]

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            runs[0] += 1

    gc.collect()
    gc.callbacks.append(count)
    try:
        for _ in range(repeat):
            fn()
    finally:
        gc.callbacks.remove(count)
    return round(runs[0] / repeat, 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=400)
    p.add_argument("--face-share", type=float, default=0.42, help="seed_feed: 60%% with an image x 70%% with faces")
    p.add_argument("--text-share", type=float, default=0.7)
    p.add_argument("--repeat", type=int, default=2000)
    p.add_argument("--label", default="this checkout")
    p.add_argument("--out", default="", help="write <out>.json and <out>.md (append a row when they exist)")
    args = p.parse_args()
    rows = cached_rows(args.rows, args.face_share, args.text_share)
    gc.freeze()
    result: dict[str, Any] = {"label": args.label, "rows": len(rows), "text_share": args.text_share}
    result["candidates"] = timed(lambda: to_candidates(rows), args.repeat)
    for name, mood in MOODS.items():

        def ranking(mood: Mood = mood) -> None:
            rank_feed(to_candidates(rows), now=time.time(), mood=mood, policy="repair", strength=0.5, limit=400)

        ranking()
        result[f"ranking_{name}"] = timed(ranking, args.repeat)
        result[f"gc0_per_ranking_{name}"] = young_collections(ranking, args.repeat)
    print(json.dumps(result))
    if args.out:
        write(Path(args.out), result)


def write(out: Path, result: dict[str, Any] | None) -> None:
    """Add ``result`` to ``<out>.json`` (None: none) and write ``<out>.md`` from it."""
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    data = (
        json.loads(json_path.read_text()) if json_path.exists() else {"python": platform.python_version(), "runs": []}
    )
    if result is not None:
        data["runs"].append(result)
        json_path.write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        "# One fresh ranking's Python part, in-process",
        "",
        f"Generated by `bench/rank_parts.py` (Python {data['python']}): one user's cached network rows "
        "(42% with a face reading) -> `candidates_from_rows` -> `rank_feed` (policy repair, strength 0.5), "
        "median / p95 ms of many rankings in one process, and young-generation garbage collections per ranking "
        "after `gc.freeze()`. A checkout from before text affect reads the same rows' face fields only. Rows of one "
        "table were measured one after the other on a shared machine.",
        "",
        "| checkout | rows | text share | candidates | ranking, sad mood | ranking, angry mood | gc0 / ranking (sad, angry) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["runs"]:
        cells = [r["candidates"], r["ranking_sad"], r["ranking_angry"]]
        lines.append(
            f"| {r['label']} | {r['rows']} | {r['text_share']:.0%} | "
            + " | ".join(f"{c['median_ms']:.3f} / {c['p95_ms']:.3f}" for c in cells)
            + f" | {r['gc0_per_ranking_sad']}, {r['gc0_per_ranking_angry']} |"
        )
    md_path.write_text("\n".join(lines) + "\n\nRaw figures: `" + json_path.name + "` next to this file.\n")


if __name__ == "__main__":
    main()
