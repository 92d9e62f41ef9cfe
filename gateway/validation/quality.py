"""Referral quality per sender: counts, completeness distribution and the commonest gaps.

A local authority runs ``gateway quality`` over the messages it received to
show a school or a force what its referrals lack. :class:`QualityReport`
collects one validated message at a time (constant memory per sender) and
renders plain text or a self-contained HTML page with inline SVG charts.
"""

from __future__ import annotations

import dataclasses
import html
import statistics
from collections import Counter

from gateway.model import systems as S
from gateway.validation.checks import _d, _l, _s
from gateway.validation.standard import Standard, load_standard
from gateway.validation.validator import completeness, gap_items, has_errors

BUCKETS = ((0, 19), (20, 39), (40, 59), (60, 79), (80, 100))
TOP_GAPS = 10


@dataclasses.dataclass
class SenderQuality:
    """What one sender's messages show."""

    endpoint: str
    name: str
    messages: int = 0
    referrals: int = 0
    with_errors: int = 0
    scores: list[int] = dataclasses.field(default_factory=list)
    gaps: Counter = dataclasses.field(default_factory=Counter)

    def distribution(self) -> list[tuple[str, int]]:
        """Return ``[("0-19", n), ...]``: how many messages scored in each band."""
        return [(f"{lo}-{hi}", sum(lo <= s <= hi for s in self.scores)) for lo, hi in BUCKETS]

    def top_gaps(self, n: int = TOP_GAPS) -> list[tuple[str, int]]:
        """Return the ``n`` commonest gaps as ``(item id, messages)``, commonest first, ties by id."""
        return sorted(self.gaps.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.scores) if self.scores else None


def message_sender(bundle: dict) -> tuple[str, str, str | None]:
    """Return ``(endpoint, display name, event code)`` of a message Bundle."""
    entries = _l(bundle.get("entry"))
    header = _d(_d(entries[0] if entries else None).get("resource"))
    source = _d(header.get("source"))
    endpoint = _s(source.get("endpoint")) or "(unknown sender)"
    name = _s(source.get("name"))
    sender_ref = _d(header.get("sender")).get("reference")
    for entry in entries:
        if _d(entry).get("fullUrl") == sender_ref and _s(_d(_d(entry).get("resource")).get("name")):
            name = _s(entry["resource"]["name"])
            break
    return endpoint, name or endpoint, _d(header.get("eventCoding")).get("code")


class QualityReport:
    """Per-sender statistics over validated messages; :meth:`add` one at a time."""

    def __init__(self, standard: Standard | None = None):
        self.standard = standard or load_standard()
        self.senders: dict[str, SenderQuality] = {}
        self.unreadable: list[str] = []
        self._titles = {i.id: i.title for i in self.standard.items}
        self._titles.update({r.id: r.title for r in self.standard.identifiers})
        self._titles.update({f.id: f.title for f in self.standard.flags})
        self._titles["fhir-base"] = "Valid FHIR R4"

    def title(self, item_id: str) -> str:
        """Return the title of an item, identifier check or flag (the id itself when unknown)."""
        return self._titles.get(item_id, item_id)

    def add(self, bundle: dict, outcome: dict) -> None:
        """Count one message and its OperationOutcome from ``validate_bundle``."""
        endpoint, name, event = message_sender(bundle)
        sender = self.senders.setdefault(endpoint, SenderQuality(endpoint, name))
        sender.messages += 1
        sender.referrals += event == S.EVENT_REFERRAL
        sender.with_errors += has_errors(outcome)
        score = completeness(outcome)
        if score is not None:
            sender.scores.append(score)
        sender.gaps.update(set(gap_items(outcome)))  # a message counts once per gap

    @property
    def messages(self) -> int:
        return sum(s.messages for s in self.senders.values())

    def ordered(self) -> list[SenderQuality]:
        """Return the senders, most messages first, then by name."""
        return sorted(self.senders.values(), key=lambda s: (-s.messages, s.name, s.endpoint))

    # -- rendering
    def text(self) -> str:
        """Return the report as plain text."""
        lines = [f"Referral quality: {self.messages} message(s) from {len(self.senders)} sender(s)"]
        if self.unreadable:
            lines.append(f"{len(self.unreadable)} line(s) could not be read: {'; '.join(self.unreadable[:5])}")
        for s in self.ordered():
            lines += ["", f"{s.name} ({s.endpoint})",
                      f"  messages: {s.messages} (referrals {s.referrals}, other records {s.messages - s.referrals}); "
                      f"refused with errors: {s.with_errors}"]
            if s.scores:
                lines.append(f"  completeness: mean {s.mean:.0f}%, median {s.median:.0f}%; "
                             + ", ".join(f"{band}: {n}" for band, n in s.distribution()))
            gaps = s.top_gaps()
            if gaps:
                lines.append("  most common gaps:")
                lines += [f"    {n:>6}  {self.title(item)} ({item})" for item, n in gaps]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """Return the report as one self-contained HTML page (inline CSS and SVG, no external assets)."""
        esc = html.escape
        parts = [
            "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            "<title>Referral quality</title>",
            "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#1b1b1b}"
            "section{border-top:1px solid #ccc;padding:1rem 0}table{border-collapse:collapse}"
            "td,th{padding:.2rem .6rem;text-align:left}td.n{text-align:right}"
            ".bar{fill:#1d70b8}.gap{fill:#d4351c}svg text{font-size:12px}</style></head><body>",
            "<h1>Referral quality</h1>",
            f"<p>{self.messages} message(s) from {len(self.senders)} sender(s). Completeness is the share of the "
            "referral standard's recommended (SHOULD) items a message holds.</p>",
        ]
        if self.unreadable:
            parts.append(f"<p>{len(self.unreadable)} line(s) could not be read.</p>")
        for s in self.ordered():
            parts += [f"<section><h2>{esc(s.name)}</h2><p><code>{esc(s.endpoint)}</code></p>",
                      f"<p>{s.messages} message(s): {s.referrals} referral(s); {s.with_errors} refused with errors.",
                      f" Completeness mean {s.mean:.0f}%, median {s.median:.0f}%.</p>" if s.scores else "</p>",
                      "<h3>Completeness</h3>", _histogram_svg(s.distribution())]
            gaps = s.top_gaps()
            if gaps:
                parts += ["<h3>Most common gaps</h3>", _gaps_svg([(self.title(i), n) for i, n in gaps], s.messages),
                          "<table><tr><th>item</th><th>messages</th><th>share</th></tr>"]
                parts += [f"<tr><td>{esc(self.title(i))} <code>{esc(i)}</code></td><td class=n>{n}</td>"
                          f"<td class=n>{100 * n / s.messages:.0f}%</td></tr>" for i, n in gaps]
                parts.append("</table>")
            parts.append("</section>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _histogram_svg(distribution: list[tuple[str, int]]) -> str:
    width, height, bar = 60 * len(distribution) + 20, 160, 44
    peak = max((n for _, n in distribution), default=0) or 1
    out = [f'<svg role="img" aria-label="completeness distribution" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for k, (band, n) in enumerate(distribution):
        h = round(110 * n / peak)
        x = 10 + 60 * k
        out.append(f'<rect class="bar" x="{x}" y="{130 - h}" width="{bar}" height="{h}"><title>{band}%: {n}</title>'
                   "</rect>")
        out.append(f'<text x="{x + bar / 2}" y="{125 - h}" text-anchor="middle">{n}</text>')
        out.append(f'<text x="{x + bar / 2}" y="148" text-anchor="middle">{band}%</text>')
    out.append("</svg>")
    return "".join(out)


def _label(title: str, limit: int = 44) -> str:
    """``title`` cut at a word to at most ``limit`` characters, with an ellipsis when cut (the table has it whole)."""
    if len(title) <= limit:
        return title
    cut = title[:limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + "\u2026"


def _gaps_svg(gaps: list[tuple[str, int]], total: int) -> str:
    # The label column fits 44 characters of 12 px text (about 8 px each at most); a longer title
    # is cut at a word, and kept whole in the label's tooltip and in the table below the chart.
    row, label_width, bar_width = 22, 360, 300
    height = row * len(gaps) + 10
    out = [f'<svg role="img" aria-label="most common gaps" width="{label_width + bar_width + 60}" height="{height}" '
           'xmlns="http://www.w3.org/2000/svg">']
    for k, (title, n) in enumerate(gaps):
        y = 5 + row * k
        w = round(bar_width * n / max(total, 1))
        out.append(f'<text x="{label_width - 6}" y="{y + 14}" text-anchor="end"><title>{html.escape(title)}</title>'
                   f'{html.escape(_label(title))}</text>')
        out.append(f'<rect class="gap" x="{label_width}" y="{y + 2}" width="{w}" height="{row - 6}"></rect>')
        out.append(f'<text x="{label_width + w + 4}" y="{y + 14}">{n}</text>')
    out.append("</svg>")
    return "".join(out)
