"""review.html and review.md of a real review (of the practice's failing q2, on a copy): hostile
text typed into the review is shown as data (no markup, no bidi reordering), the status history
and closures are shown, a review bound to another report says so, and rendering is deterministic."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from drill.cli import cli
from drill.practice.review import load_review, write_review
from drill.practice.review_model import Retest, StatusChange
from drill.practice.review_views import render_review_html, render_review_markdown
from drill.report.build import load_report
from tests.practice.conftest import Practice

HOSTILE = '<script>alert("x")</script> fix \u202eredro\u202c | [link](javascript:alert(1)) **bold**'


def drill(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def review_path(tmp_path: Path, practice: Practice) -> Path:
    """A copy of q2 with a review whose first action has a hostile title and a status history."""
    folder = tmp_path / practice.runs["q2"].name
    shutil.copytree(practice.runs["q2"], folder, symlinks=True)
    assert drill("review", "init", folder).exit_code == 0
    path = folder / "review.yaml"
    review = load_review(path)
    first, *rest = review.actions
    history = (
        StatusChange("2026-12-03T08:00:00+00:00", "in-progress", "ana", "started <b>now</b>"),
        StatusChange("2026-12-20T09:30:00+00:00", "done", "ana", "retest q3"),
    )
    closed = replace(
        first,
        title=HOSTILE,
        owner="ana",
        due="2026-12-31",
        status="done",
        ticket="OPS-7 https://tracker.example/browse/OPS-7",
        closure=Retest("20261220T090000Z-abcdef12", "b" * 64, "2026-12-20T09:30:00+00:00"),
        history=history,
    )
    write_review(path, replace(review, actions=(closed, *rest), lessons=("keep <i>runbooks</i> short",)))
    return path


def test_views_escape_hostile_text_and_show_the_status_history(review_path: Path) -> None:
    result = drill("review", "render", review_path)
    assert result.exit_code == 0, result.output
    page = review_path.with_name("review.html").read_text(encoding="utf-8")
    doc = review_path.with_name("review.md").read_text(encoding="utf-8")

    # HTML: no markup of the review's own, no bidi control character, the override shown as an escape
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "<b>now</b>" not in page and "&lt;b&gt;now&lt;/b&gt;" in page
    assert "\u202e" not in page and "\u202c" not in page and "\\u202e" in page
    assert "default-src 'none'" in page  # the CSP allows no script at all
    assert 'href="https://tracker.example/browse/OPS-7"' in page
    assert 'href="javascript' not in page

    # Markdown: escaped so it renders as the text typed, one table row, no raw HTML or link
    assert "\u202e" not in doc and "\\u202e" in doc
    assert "\\<script\\>" in doc and "<script>" not in doc
    assert "\\[link\\]" in doc and "\\*\\*bold\\*\\*" in doc
    assert "\\|" in doc  # the pipe in the title does not split the table cell
    row = next(line for line in doc.splitlines() if line.startswith("| A-001 "))
    assert row.count(" | ") == 8  # nine cells, as the header has

    # the status history of the action, in order, and its closure
    for text in (page, doc):
        assert "2026-12-03 08:00:00Z" in text and "2026-12-20 09:30:00Z" in text
        assert "2026-12-20 09:30:00Z" in text[text.index("2026-12-03 08:00:00Z") :]  # after it, in order
        assert "in progress" in text and "retest q3" in text
        assert "20261220T090000Z-abcdef12" in text
    assert "started \\<b\\>now\\</b\\>" in doc


def test_views_are_deterministic_and_warn_of_another_report(review_path: Path, practice: Practice) -> None:
    review = load_review(review_path)
    report = load_report(review_path.parent)
    assert render_review_html(review, report) == render_review_html(review, report)
    assert render_review_markdown(review, report) == render_review_markdown(review, report)
    assert "another one" not in render_review_markdown(review, report)

    other = load_report(practice.runs["q3"])  # the review is about q2, not q3
    doc = render_review_markdown(review, other)
    assert "Warning: the report beside this review is another one" in doc
    assert "another" in render_review_html(review, other)

    only_md = drill("review", "render", review_path, "--to", "md")
    assert only_md.exit_code == 0 and not review_path.with_name("review.html").exists()
    assert review_path.with_name("review.md").read_text(encoding="utf-8") == render_review_markdown(
        review, report
    )
