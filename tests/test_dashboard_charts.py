"""Server-side SVG charts of the admin dashboard: pure functions from numbers to SVG strings."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from dashboard import charts
from dashboard.charts import Item, Series

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML or this raises
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def marks(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [el for el in root.iter(f"{{{NS['svg']}}}{tag}") if cls in (el.get("class") or "").split()]


def assert_accessible(root: ET.Element) -> None:
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby").split()
    assert root.find("svg:title", NS).get("id") == title_id and root.find("svg:title", NS).text
    assert root.find("svg:desc", NS).get("id") == desc_id and root.find("svg:desc", NS).text
    assert root.get("viewBox") and root.get("width") == "100%"


# --- helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("peak", "ticks"), [
    (0, [0.0, 1.0]),
    (3, [0, 1, 2, 3]),
    (7, [0, 2, 4, 6, 8]),
    (95, [0, 25, 50, 75, 100]),
    (1234, [0, 500, 1000, 1500]),
])  # fmt: skip
def test_axis_ticks_are_round(peak, ticks) -> None:
    assert charts.axis_ticks(peak, integer=True) == ticks


def test_axis_ticks_for_small_floats() -> None:
    assert charts.axis_ticks(0.37) == [0, 0.1, 0.2, 0.3, 0.4]


def test_formatting() -> None:
    assert charts.fmt_number(1234) == "1,234" and charts.fmt_number(12.345) == "12.3" and charts.fmt_number(None) == "–"
    assert charts.fmt_ms(4.25) == "4.2 ms" and charts.fmt_ms(850) == "850 ms" and charts.fmt_ms(1520) == "1.5 s"
    assert charts.fmt_ms(90_000) == "1.5 min" and charts.fmt_ms(None) == "–"
    assert charts.fmt_pct(0.5) == "50%" and charts.fmt_pct(0.004) == "0.4%"


def test_every_emotion_has_its_own_color() -> None:
    colors = [charts.emotion_color(e) for e in charts.EMOTION_COLORS]
    assert len(set(colors)) == len(colors) == 8
    assert charts.emotion_color("unknown-label") == charts.emotion_color("unknown-label")


# --- stacked bars --------------------------------------------------------------------------------------


def test_stacked_bars_draw_one_rect_per_nonzero_value() -> None:
    svg = charts.stacked_bar_chart(
        title="Analyses", categories=["a", "b", "c"],
        series=[Series("done", [1, 0, 3], "#0a0"), Series("failed", [2, 0, None], "#a00")],
    )  # fmt: skip
    root = parse(svg)
    assert_accessible(root)
    bars = marks(root, "rect", "bar")
    assert [b.get("data-value") for b in bars] == ["1", "2", "3"]
    assert not marks(root, "rect", "suppressed")
    heights = {b.get("data-value"): float(b.get("height")) for b in bars}
    assert heights["2"] == pytest.approx(2 * heights["1"], rel=0.02)
    assert "total 6" in root.find("svg:desc", NS).text
    assert "done" in svg and "failed" in svg  # legend


def test_normalized_bars_fill_the_plot_and_suppressed_buckets_are_hatched() -> None:
    svg = charts.stacked_bar_chart(
        title="Emotions", categories=["d1", "d2", "d3"], normalize=True, suppressed=[1],
        suppressed_label="suppressed (< 5 users)",
        series=[Series("happiness", [3, 9, 0], "#fb0"), Series("sadness", [1, 9, 0], "#37d")],
    )  # fmt: skip
    root = parse(svg)
    bars = marks(root, "rect", "bar")
    assert len(bars) == 2  # d1 only: d2 is suppressed, d3 is empty
    assert sum(float(b.get("height")) for b in bars) == pytest.approx(
        float(marks(root, "rect", "suppressed")[0].get("height")), abs=0.5
    )
    sup = marks(root, "rect", "suppressed")
    assert len(sup) == 1 and "suppressed (&lt; 5 users)" in svg
    assert "9" not in [b.get("data-value") for b in bars]  # the suppressed bucket's values never reach the SVG
    assert "75%" in svg  # 3 of 4


def test_empty_stacked_chart_is_a_placeholder() -> None:
    svg = charts.stacked_bar_chart(
        title="Nothing", categories=["a"], series=[Series("x", [0], "#000")], empty_message="no analyses"
    )
    root = parse(svg)
    assert "no-data" in root.get("class") and "no analyses" in svg and not marks(root, "rect", "bar")


def test_labels_are_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    svg = charts.stacked_bar_chart(title=evil, categories=[evil], series=[Series(evil, [1], '"><x')])
    parse(svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    svg = charts.bar_chart(title=evil, items=[Item(evil, 1, "#000", note=evil)])
    parse(svg)
    assert "<script>" not in svg
    svg = charts.donut_chart(title=evil, items=[Item(evil, 1, "#000")], center_label=evil)
    parse(svg)
    assert "<script>" not in svg


def test_chart_ids_are_unique_and_sanitised() -> None:
    a = parse(charts.bar_chart(title="Same", items=[Item("a", 1, "#000")]))
    b = parse(charts.bar_chart(title="Same", items=[Item("a", 1, "#000")]))
    assert a.get("id") != b.get("id")
    c = parse(charts.bar_chart(title="x", items=[Item("a", 1, "#000")], chart_id='bad id"<>'))
    assert c.get("id") == "bad-id---"


# --- horizontal bars ------------------------------------------------------------------------------------------


def test_bar_chart_scales_to_the_largest_value_and_hides_suppressed_values() -> None:
    svg = charts.bar_chart(
        title="Policies", unit="users", suppressed_label="suppressed (< 5 users)",
        items=[Item("repair", 10, "#0a0"), Item("congruent", 5, "#00a"), Item("off", None, "#999", suppressed=True)],
    )  # fmt: skip
    root = parse(svg)
    assert_accessible(root)
    bars = marks(root, "rect", "bar")
    assert [b.get("data-value") for b in bars] == ["10", "5"]
    assert float(bars[0].get("width")) == pytest.approx(2 * float(bars[1].get("width")), rel=0.01)
    assert len(marks(root, "rect", "suppressed")) == 1
    assert "10 users" in svg and "off: suppressed (< 5 users)" in root.find("svg:desc", NS).text


def test_bar_chart_with_fixed_maximum() -> None:
    root = parse(
        charts.bar_chart(
            title="F1",
            items=[Item("a", 0.5, "#000")],
            max_value=1.0,
            value_fmt=lambda v: f"{v:.2f}",
            width=400,
            label_width=100,
        )
    )
    (bar,) = marks(root, "rect", "bar")
    (track,) = marks(root, "rect", "track")
    assert float(bar.get("width")) == pytest.approx(float(track.get("width")) / 2, rel=0.01)
    assert "0.50" in ET.tostring(root, encoding="unicode")


def test_bar_chart_all_zero_is_empty() -> None:
    assert "no-data" in charts.bar_chart(title="x", items=[Item("a", 0, "#000")])


# --- lines -------------------------------------------------------------------------------------------------------


def test_line_chart_breaks_lines_at_missing_values() -> None:
    svg = charts.line_chart(
        title="Latency", categories=["0", "1", "2", "3", "4"], unit="ms",
        series=[Series("p50", [10, 20, None, 30, 40], "#00f"), Series("p95", [None, None, None, None, 90], "#f00")],
    )  # fmt: skip
    root = parse(svg)
    assert_accessible(root)
    lines = marks(root, "path", "line")
    assert len(lines) == 2  # p50 as two segments; p95 has a single point, no line
    assert all(line.get("data-series") == "p50" for line in lines)
    assert len(marks(root, "circle", "point")) == 5
    ys = {p.get("data-value"): float(p.get("cy")) for p in marks(root, "circle", "point")}
    assert ys["10"] > ys["20"] > ys["90"]  # larger values are higher up


def test_line_chart_without_values_is_empty() -> None:
    assert "no-data" in charts.line_chart(title="x", categories=["a"], series=[Series("p50", [None], "#000")])


# --- donut ------------------------------------------------------------------------------------------------------------


def test_donut_slices_and_legend() -> None:
    svg = charts.donut_chart(
        title="Mood", center_label="15", center_sub="users", suppressed_label="suppressed (< 5 users)",
        items=[Item("happiness", 10, "#fb0"), Item("neutral", 5, "#999"), Item("anger", None, "#d00", suppressed=True),
               Item("fear", 0, "#00f")],
    )  # fmt: skip
    root = parse(svg)
    assert_accessible(root)
    slices = marks(root, "path", "slice")
    assert [s.get("data-value") for s in slices] == ["10", "5"]
    assert "67%" in svg and "33%" in svg and "anger" in svg and "fear" not in svg
    assert "suppressed (&lt; 5 users)" in svg


def test_donut_with_one_item_is_a_full_ring() -> None:
    root = parse(charts.donut_chart(title="One", items=[Item("happiness", 7, "#fb0")]))
    (ring,) = marks(root, "path", "slice")
    assert ring.get("d").count("A") == 2


def test_donut_all_suppressed_is_empty() -> None:
    assert "no-data" in charts.donut_chart(title="x", items=[Item("a", None, "#000", suppressed=True)])


# --- progress ---------------------------------------------------------------------------------------------------------


def test_progress_bar() -> None:
    root = parse(charts.progress_bar(title="Job 1", done=240, failed=10, total=1000))
    assert_accessible(root)
    done, failed = marks(root, "rect", "progress-done")[0], marks(root, "rect", "progress-failed")[0]
    track = marks(root, "rect", "track")[0]
    assert float(done.get("width")) == pytest.approx(0.24 * float(track.get("width")), rel=0.01)
    assert float(failed.get("x")) == pytest.approx(float(done.get("width")), rel=0.01)
    assert "25% · 250 / 1,000" in ET.tostring(root, encoding="unicode")


def test_progress_bar_edge_cases() -> None:
    assert "no items" in charts.progress_bar(title="empty", done=0, total=0)
    root = parse(charts.progress_bar(title="over", done=15, failed=3, total=10))
    track = float(marks(root, "rect", "track")[0].get("width"))
    assert float(marks(root, "rect", "progress-done")[0].get("width")) == pytest.approx(track)
    assert not marks(root, "rect", "progress-failed")
