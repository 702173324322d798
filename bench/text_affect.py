"""Text-affect benchmark: quality of ``recommender.text_affect`` on human-rated sentences, and its speed.

Gold data: the four human-rated sets of the VADER paper (Hutto & Gilbert,
ICWSM 2014): 4,200 tweets, 10,605 movie-review, 3,708 product-review and 5,190
New York Times editorial snippets, each the mean of 20 raters on -4..+4. They
ship in the ``vaderSentiment`` source distribution on PyPI (MIT), in
``additional_resources/hutto_ICWSM_2014.tar.gz``. Without ``--gold`` the bench
fetches that sdist with pip (``pip download --no-deps --no-binary :all:``); the
service itself never downloads anything. Note: these are the method authors'
own evaluation sets (the lexicon was rated on words, not on these sentences).

Reported per set: coverage (share with known valence; the rest: language not
covered or no sentiment cue), accuracy of the valence sign on covered items
whose gold is clearly toned (|gold| >= 0.5), Pearson and Spearman correlation
with gold on covered items, the same for plain VADER (no language gate, no cue
rule) on every item, and sign accuracy by strength of the reading (|valence|
band; ``2 * accuracy - 1`` is the confidence ``recommender.text_affect`` gives,
``CONFIDENCE_BY_STRENGTH``) and by number of cues. Speed: CPU time per post over the tweets, whole
reading and its parts. A small check set of non-English posts (written for
this bench, below) gives the share the language gate turns to unknown.

    .venv/bin/python bench/text_affect.py [--gold DIR_OR_TARBALL] [--out bench/results/text_affect]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender import text_affect  # noqa: E402

SETS = ("tweets", "movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets")
CLEAR = 0.5  # gold |mean rating| on -4..4 from which a sentence counts as clearly toned

#: Short posts in languages the lexicon does not cover (written for this bench), with their language.
OTHER_LANGUAGES = [
    ("fr", "Je suis tellement heureux aujourd'hui !"), ("fr", "Quelle journée horrible, je suis épuisé."),
    ("fr", "Le film était super, je n'ai pas aimé la fin"), ("fr", "Ce restaurant est une catastrophe, vraiment nul"),
    ("de", "Ich bin heute so glücklich!"), ("de", "Das Wetter ist furchtbar und ich bin müde."),
    ("de", "Das ist kein Problem, alles super!"), ("de", "Die Party war super cool"),
    ("es", "Estoy muy feliz con mis amigos."), ("es", "Qué día tan triste, no quiero salir."),
    ("es", "No me gusta nada, es horrible"), ("es", "te quiero mucho"),
    ("it", "Sono molto contento di vederti!"), ("it", "Che giornata terribile, sono stanco."),
    ("it", "Non è vero, questo film è fantastico"), ("pt", "Estou muito feliz hoje!"),
    ("pt", "Que dia horrível, estou cansado."), ("nl", "Ik ben zo blij vandaag!"),
    ("nl", "Wat een vreselijke dag, ik ben moe."), ("tr", "Bugün çok mutluyum!"),
    ("pl", "Jestem dziś bardzo szczęśliwy!"), ("sv", "Jag är så glad idag!"), ("sv", "Vilken hemsk dag."),
    ("ru", "Я сегодня очень счастлив!"), ("el", "Σήμερα είμαι πολύ χαρούμενος!"), ("ja", "今日はとても幸せです！"),
    ("zh", "我今天很高兴！"), ("ko", "오늘 정말 행복해요!"), ("id", "Hari ini saya sangat senang!"),
    ("fi", "Tänään olen todella iloinen!"), ("cs", "Dnes jsem moc šťastný!"), ("hr", "Danas sam jako sretan!"),
]  # fmt: skip


def fetch_gold(dest: Path) -> Path:
    """Download the vaderSentiment sdist with pip and unpack its human-rated sets into ``dest``."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "vaderSentiment==3.3.2", "-d", str(dest), "-q"], check=True)  # fmt: skip
    return unpack(next(dest.glob("vaderSentiment-*.tar.gz")), dest)


def unpack(path: Path, dest: Path) -> Path:
    """The directory holding ``*_GroundTruth.txt`` from an sdist, the inner tarball or a directory."""
    if path.is_dir():
        found = next(path.rglob("tweets_GroundTruth.txt"), None)
        if found:
            return found.parent
        inner = next(path.rglob("hutto_ICWSM_2014.tar.gz"), None)
        if inner is None:
            raise SystemExit(f"no gold sets under {path}")
        return unpack(inner, dest)
    with tarfile.open(path) as tar:
        tar.extractall(dest, filter="data")
    return unpack(dest, dest)


def load(gold: Path, name: str) -> list[tuple[float, str]]:
    rows = []
    for line in (gold / f"{name}_GroundTruth.txt").read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            rows.append((float(parts[1]), parts[2]))
    return rows


def sign_accuracy(pairs: list[tuple[float, float]]) -> float | None:
    clear = [(v, g) for v, g in pairs if abs(g) >= CLEAR]
    return round(sum(1 for v, g in clear if v * g > 0) / len(clear), 4) if clear else None


def correlations(pairs: list[tuple[float, float]]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    return {"pearson": round(float(pearsonr(xs, ys)[0]), 4), "spearman": round(float(spearmanr(xs, ys)[0]), 4)}


def evaluate(rows: list[tuple[float, str]], readings: list[tuple[Any, float]]) -> dict[str, Any]:
    analyzer = text_affect._analyzer()
    covered = [(r.valence, g) for r, g in readings if r.valence is not None]
    plain = [(float(analyzer.polarity_scores(text)["compound"]), gold) for gold, text in rows]
    reasons: dict[str, int] = {}
    for r, _ in readings:
        if r.valence is None:
            key = "language not covered" if r.reason.startswith("language") else r.reason
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "items": len(rows),
        "coverage": round(len(covered) / len(rows), 4),
        "unknown": reasons,
        "sign_accuracy_clear": sign_accuracy(covered),
        "clear_items_covered": sum(1 for _, g in covered if abs(g) >= CLEAR),
        **correlations(covered),
        "plain_vader": {"sign_accuracy_clear": sign_accuracy(plain), **correlations(plain)},
    }


def by_band(readings: list[tuple[Any, float]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Sign accuracy (clear gold) of covered readings by |valence| band and by number of cues."""
    bands: dict[str, list[tuple[float, float]]] = {}
    cues: dict[str, list[tuple[float, float]]] = {}
    lower = 0.0
    for upper, _ in text_affect.CONFIDENCE_BY_STRENGTH:
        bands[f"{lower:.1f}-{upper:.1f}"] = []
        lower = upper
    for r, g in readings:
        if r.valence is None:
            continue
        band = next(
            k
            for k, (u, _) in zip(bands, text_affect.CONFIDENCE_BY_STRENGTH, strict=True)
            if abs(r.valence) < u or u == 1.0
        )
        bands[band].append((r.valence, g))
        cues.setdefault(str(r.cues) if r.cues < 4 else "4+", []).append((r.valence, g))

    def summary(groups: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, Any]]:
        return {k: {"items": sum(1 for _, g in v if abs(g) >= CLEAR), "sign_accuracy_clear": sign_accuracy(v)}
                for k, v in sorted(groups.items())}  # fmt: skip

    return {"strength": summary(bands), "cues": summary(cues)}


def timing(texts: list[str], repeat: int) -> dict[str, float]:
    """CPU microseconds per post: the whole reading, language identification, VADER alone."""
    text_affect.read_text("warm up")
    analyzer = text_affect._analyzer()
    parts = {
        "read_text": text_affect.read_text,
        "language": text_affect.detect_language,
        "vader": lambda t: analyzer.polarity_scores(text_affect.describe_emoji(t)),
    }
    out: dict[str, float] = {}
    for name, fn in parts.items():
        runs = []
        for _ in range(repeat):
            started = time.process_time()
            for t in texts:
                fn(t)
            runs.append((time.process_time() - started) / len(texts) * 1e6)
        out[f"{name}_us"] = round(statistics.median(runs), 1)
    per_post = []
    for t in texts[:2000]:
        started = time.perf_counter()
        text_affect.read_text(t)
        per_post.append((time.perf_counter() - started) * 1e6)
    per_post.sort()
    out["read_text_p50_us"] = round(per_post[len(per_post) // 2], 1)
    out["read_text_p95_us"] = round(per_post[int(len(per_post) * 0.95)], 1)
    longest = "What a wonderful, happy day with friends. " * 120  # 5,040 characters: the post limit
    started = time.process_time()
    for _ in range(20):
        text_affect.read_text(longest)
    out["read_text_5000_chars_us"] = round((time.process_time() - started) / 20 * 1e6, 1)
    return out


def other_languages() -> dict[str, Any]:
    readings = [(lang, text, text_affect.read_text(text)) for lang, text in OTHER_LANGUAGES]
    missed = [{"language": lang, "text": text, "read_as": r.language, "valence": r.valence}
              for lang, text, r in readings if r.valence is not None or not r.reason.startswith("language")]  # fmt: skip
    gated = sum(1 for _, _, r in readings if r.reason.startswith("language"))
    return {"items": len(readings), "language_not_covered": gated, "not_gated": missed}


def write_md(path: Path, result: dict[str, Any]) -> None:
    lines = [
        "# Text affect benchmark",
        "",
        f"Generated by `bench/text_affect.py` ({result['machine']}). Method: `recommender.text_affect` "
        "(VADER 3.3.2 + py3langid language gate + cue rule). Gold: the four human-rated sets of the VADER "
        "paper (mean of 20 raters, -4..+4), shipped in the vaderSentiment sdist (MIT); they are the "
        "method authors' own evaluation sets, so read these as an optimistic bound for other text.",
        "",
        f"Sign accuracy counts covered items whose gold is clearly toned (|gold| >= {CLEAR}). "
        "Correlations are with the gold mean over covered items. `plain VADER`: the same analyser "
        "on every item, without the language gate and the cue rule.",
        "",
        "| set | items | coverage | unknown: no cue / language | sign acc. | Pearson r | Spearman | "
        "plain VADER sign acc. / r |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["sets"].items():
        unknown = r["unknown"]
        lines.append(
            f"| {name} | {r['items']:,} | {r['coverage']:.1%} | {unknown.get('no sentiment cue', 0)} / "
            f"{unknown.get('language not covered', 0)} | {r['sign_accuracy_clear']:.1%} | {r['pearson']:.3f} | "
            f"{r['spearman']:.3f} | {r['plain_vader']['sign_accuracy_clear']:.1%} / {r['plain_vader']['pearson']:.3f} |"
        )
    lines += ["", "## By strength of the reading (all four sets, clearly toned gold)", "",
              "`2 * acc - 1` is how far the sign beats a coin toss; `recommender.text_affect` gives it as the "
              "reading's confidence (`CONFIDENCE_BY_STRENGTH`, set from this table: calibrated in-sample).", "",
              "| abs(valence) | items | sign acc. | 2 * acc - 1 | confidence given |", "|---|---|---|---|---|"]  # fmt: skip
    for (band, r), (_, given) in zip(
        result["by_band_all"]["strength"].items(), text_affect.CONFIDENCE_BY_STRENGTH, strict=True
    ):
        acc = r["sign_accuracy_clear"]
        lines.append(f"| {band} | {r['items']:,} | {acc:.1%} | {2 * acc - 1:.2f} | {given:.2f} |")
    lines += ["", "By number of sentiment cues (not used: more cues are not more often right):", "",
              "| cues | items | sign acc. |", "|---|---|---|"]  # fmt: skip
    for cues, r in result["by_band_all"]["cues"].items():
        lines.append(f"| {cues} | {r['items']:,} | {r['sign_accuracy_clear']:.1%} |")
    o = result["other_languages"]
    lines += ["", "## Languages the lexicon does not cover", "",
              f"{o['items']} short posts in {len({lang for lang, _ in OTHER_LANGUAGES})} other languages (written for this bench, `OTHER_LANGUAGES`): "
              f"{o['language_not_covered']} identified as another language (unknown affect). Not gated:", ""]  # fmt: skip
    lines += [
        f'- {m["language"]}: "{m["text"]}" -> read as `{m["read_as"]}`, valence {m["valence"]}' for m in o["not_gated"]
    ]
    s = result["speed"]
    lines += ["", "## Speed (one core, CPU time per post, tweets)", "",
              f"- whole reading: {s['read_text_us']} µs (wall p50 {s['read_text_p50_us']} µs, p95 {s['read_text_p95_us']} µs: "
              "wall times include waiting for a shared CPU; CPU time is the figure to use)",
              f"- of which language identification: {s['language_us']} µs; VADER with emoji: {s['vader_us']} µs",
              f"- a 5,000-character post (the limit): {s['read_text_5000_chars_us']} µs",
              "", "Computed once per post on the `default` queue after the post commits; the feed only reads it.",
              "", "Raw figures: `text_affect.json` next to this file."]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gold", type=Path, help="vaderSentiment sdist, hutto_ICWSM_2014.tar.gz or a directory")
    parser.add_argument("--out", default=str(ROOT / "bench/results/text_affect"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        gold = unpack(args.gold, Path(tmp)) if args.gold else fetch_gold(Path(tmp))
        data = {name: load(gold, name) for name in SETS}
    readings = {name: [(text_affect.read_text(text), gold) for gold, text in rows] for name, rows in data.items()}
    sets = {name: evaluate(rows, readings[name]) for name, rows in data.items()}
    bands = by_band([pair for pairs in readings.values() for pair in pairs])
    import os

    result: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} before the speed runs",
        "sets": sets,
        "by_band_all": bands,
        "other_languages": other_languages(),
        "speed": timing([text for _, text in data["tweets"]], args.repeat),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_md(out.with_suffix(".md"), result)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
