"""The sign-off block of report.md and report.html: every signature beside report.json, or "Not
signed", and one line saying that trust is for `drill verify` or `ssh-keygen -Y verify`."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from drill.report.build import load_report
from drill.report.model import Report
from drill.report.render_html import render_html
from drill.report.render_md import render_markdown
from drill.report.sign import countersign_report
from drill.report.signoff import COUNTERSIGNER, PREPARER, SignOff, sign_offs_in

from .signing_helpers import key_fingerprint, make_key, make_report_dir

ANA = "SHA256:" + "q" * 43  # the fixture report's preparer (tests/report/conftest.py)
LEAD = "SHA256:" + "L" * 43
TRUST = (
    "A view lists the signatures present; it cannot know whether a key is trusted. Check them against "
    "the keys you trust with `drill verify DIR --allowed-signers FILE` or `ssh-keygen -Y verify -f "
    "allowed_signers -I PRINCIPAL -n drill-report-v1 -s report.json.PRINCIPAL.sig < report.json`."
)


def _section(markdown: str) -> str:
    return markdown[markdown.index("## Sign-off") :]


def _html_section(html: str) -> str:
    return html[html.index("<h2>Sign-off</h2>") : html.index("<h2>Verification</h2>")]


def _text(html: str) -> str:
    """The visible text of an HTML fragment, white space collapsed (none before . or ), after ()."""
    text = " ".join(re.sub(r"<[^>]+>", " ", html).replace("&lt;", "<").split())
    return re.sub(r" (?=[.)])|(?<=\() ", "", text)


def test_markdown_lists_every_signature_present(report: Report) -> None:
    sign_offs = (
        SignOff("ana", PREPARER, ANA, "report.json.ana.sig"),
        SignOff("lead", COUNTERSIGNER, LEAD, "report.json.lead.sig"),
    )
    text = render_markdown(report, sign_offs)
    assert _section(text) == (
        "## Sign-off\n"
        "\n"
        "| Signer | Role | Key fingerprint | Signature file |\n"
        "|---|---|---|---|\n"
        f"| ana | prepared the report | {ANA} | report.json.ana.sig |\n"
        f"| lead | countersigned | {LEAD} | report.json.lead.sig |\n"
        "\n"
        f"{TRUST}\n"
    )
    assert "- Sign-off: ana (prepared the report), lead (countersigned)\n" in text


def test_markdown_says_not_signed_and_names_the_absent_preparer(report: Report) -> None:
    text = render_markdown(report)
    assert _section(text) == (
        "## Sign-off\n"
        "\n"
        "**Not signed.** No signature file (report.json.PRINCIPAL.sig) is present beside report.json.\n"
        "\n"
        f"The report names `ana` (key `{ANA}`) as its preparer, but no signature by `ana` is present.\n"
        "\n"
        f"{TRUST}\n"
    )
    assert "- Sign-off: not signed\n" in text
    unnamed = render_markdown(replace(report, prepared_by=None))
    assert "**Not signed.**" in unnamed and "The report names no preparer.\n" in unnamed


def test_a_countersignature_without_the_preparers_is_shown_as_such(report: Report) -> None:
    text = render_markdown(report, (SignOff("lead", COUNTERSIGNER, LEAD, "report.json.lead.sig"),))
    section = _section(text)
    assert "**Not signed.**" not in section
    assert f"| lead | countersigned | {LEAD} | report.json.lead.sig |" in section
    assert "The report names `ana`" in section and "no signature by `ana` is present" in section


def test_a_preparers_signature_by_another_key_is_flagged(report: Report) -> None:
    other = SignOff("ana", PREPARER, LEAD, "report.json.ana.sig")
    warning = f"made with another key than the one the report names ({ANA})"
    assert f"| ana | prepared the report; {warning} | {LEAD} |" in render_markdown(report, (other,))
    assert warning in _text(_html_section(render_html(report, (other,))))


def test_html_sign_off_block_matches_the_markdown(report: Report) -> None:
    sign_offs = (
        SignOff("ana", PREPARER, ANA, "report.json.ana.sig"),
        SignOff("lead", COUNTERSIGNER, "", "x"),
    )
    html = render_html(report, sign_offs)
    text = _text(_html_section(html))
    assert text.startswith("Sign-off Signer Role Key fingerprint Signature file")
    assert f"ana prepared the report {ANA} report.json.ana.sig" in text
    assert "lead countersigned unreadable x" in text  # a .sig drill could not parse
    assert text.endswith(TRUST.replace("`", ""))
    assert "Not signed" not in html
    assert "Signatures present: ana, lead" in _text(html)
    unsigned = _html_section(render_html(report))
    assert "Not signed." in _text(unsigned)
    assert f"The report names ana (key {ANA}) as its preparer, but no signature by ana is present." in _text(
        unsigned
    )


def test_views_of_a_real_folder_list_its_signatures(tmp_path: Path) -> None:
    """Signatures made with real keys, read back from the folder as `render_views` and verify do."""
    op, lead = make_key(tmp_path, "op"), make_key(tmp_path, "lead")
    run = make_report_dir(tmp_path, signer=("operator", op))
    countersign_report(run, lead, "lead")
    report = load_report(run)
    sign_offs = sign_offs_in(run, report)
    assert sign_offs == (
        SignOff("operator", PREPARER, key_fingerprint(op), "report.json.operator.sig"),
        SignOff("lead", COUNTERSIGNER, key_fingerprint(lead), "report.json.lead.sig"),
    )
    section = _section(render_markdown(report, sign_offs))
    assert f"| operator | prepared the report | {key_fingerprint(op)} | report.json.operator.sig |" in section
    assert f"| lead | countersigned | {key_fingerprint(lead)} | report.json.lead.sig |" in section
    (run / "report.json.lead.sig").write_text("not a signature")
    assert "| lead | countersigned | unreadable | report.json.lead.sig |" in render_markdown(
        report, sign_offs_in(run, report)
    )
