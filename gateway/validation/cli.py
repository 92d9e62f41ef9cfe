"""``gateway validate`` and ``gateway quality``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from gateway.validation.validator import NotABundle, has_errors, summary, validate_bundle
from gateway.web import operation_outcome


def _now(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.timezone.utc)  # the command line is the edge where the clock is read
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time", param_hint="--now") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no offset; add one, e.g. {value}+00:00", param_hint="--now")
    return moment


def read_bundles(path: str) -> Iterator[tuple[str, dict | None, str | None]]:
    """Yield ``(where, bundle, problem)`` for each Bundle in a JSON file or an NDJSON file of Bundles.

    ``where`` names the place for people (``FILE`` or ``FILE line N``); a
    record that is not JSON or not a Bundle comes with ``bundle=None`` and a
    ``problem`` saying what is wrong. NDJSON is read one line at a time.
    Raises ``OSError`` when the file cannot be opened.
    """
    with open(path, encoding="utf-8-sig", errors="strict") as handle:
        try:
            lines = iter(handle)
            first_no, first = 0, ""
            for first_no, first in enumerate(lines, 1):
                if first.strip():
                    break
            if not first.strip():
                yield path, None, "the file is empty; give a FHIR Bundle (JSON) or NDJSON of Bundles"
                return
            try:
                document = json.loads(first)
            except ValueError:
                document = None
            if document is None:
                # Not one object per line: a single (pretty-printed) JSON document.
                text = first + handle.read()
                try:
                    yield path, json.loads(text), None
                except (ValueError, RecursionError) as exc:
                    yield path, None, f"not JSON and not NDJSON ({exc}); give a FHIR Bundle or one Bundle per line"
                return
            yield f"{path} line {first_no}", document, None
            for number, line in enumerate(lines, first_no + 1):
                if not line.strip():
                    continue
                try:
                    yield f"{path} line {number}", json.loads(line), None
                except (ValueError, RecursionError) as exc:
                    yield f"{path} line {number}", None, f"not JSON ({exc})"
        except UnicodeDecodeError as exc:
            yield path, None, f"not UTF-8 text ({exc})"


@click.command("validate")
@click.argument("file", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--now", "now_text", metavar="DATETIME",
              help="Check dates against this ISO 8601 time with offset (default: now).")
@click.option("--no-base", is_flag=True, help="Skip the FHIR R4 base-model check (profile checks only).")
def validate_command(file: str, now_text: str | None, no_base: bool) -> None:
    """Check FILE (a Bundle, or NDJSON of Bundles) against the referral standard.

    Prints one OperationOutcome per Bundle, one per line, in input order, and
    a summary on standard error. Exits 0 when no Bundle has an error, 1 when
    any has (a MUST item missing, invalid FHIR, or a line that is not a
    Bundle).
    """
    now = _now(now_text)
    total = errored = warned = 0
    try:
        for where, bundle, problem in read_bundles(file):
            total += 1
            if problem is None:
                try:
                    outcome = validate_bundle(bundle, now=now, base=not no_base)
                except NotABundle as exc:
                    problem = str(exc)
            if problem is not None:
                outcome = operation_outcome("error", "invalid", f"{where}: {problem}")
            counts = summary(outcome)
            errored += has_errors(outcome)
            warned += not counts["errors"] and bool(counts["warnings"])
            click.echo(json.dumps(outcome, ensure_ascii=False))
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror or exc}") from None
    click.echo(f"{file}: {total} Bundle(s): {errored} with errors, {warned} with warnings only, "
               f"{total - errored - warned} clean", err=True)
    sys.exit(1 if errored else 0)


@click.command("quality")
@click.argument("input_path", metavar="INPUT.ndjson", type=click.Path(exists=True, dir_okay=False))
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML page with charts here.")
@click.option("--now", "now_text", metavar="DATETIME",
              help="Check dates against this ISO 8601 time with offset (default: now).")
def quality_command(input_path: str, html_path: str | None, now_text: str | None) -> None:
    """Report, per sender, how many referrals, their completeness and the ten commonest gaps.

    INPUT.ndjson holds message Bundles, one per line (what `gateway translate`
    writes). Lines that are not Bundles are counted and named, not fatal.
    The FHIR base-model check is left to `gateway validate`.
    """
    from gateway.validation.quality import QualityReport

    now = _now(now_text)
    report = QualityReport()
    try:
        for where, bundle, problem in read_bundles(input_path):
            if problem is None:
                try:
                    report.add(bundle, validate_bundle(bundle, now=now, base=False))
                    continue
                except NotABundle as exc:
                    problem = str(exc)
            report.unreadable.append(f"{where}: {problem}")
    except OSError as exc:
        raise click.ClickException(f"cannot read {input_path}: {exc.strerror or exc}") from None
    click.echo(report.text(), nl=False)
    if html_path:
        try:
            Path(html_path).parent.mkdir(parents=True, exist_ok=True)
            Path(html_path).write_text(report.html(), encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {html_path}: {exc.strerror or exc}") from None
        click.echo(f"wrote {html_path}", err=True)


@click.group("standard")
def standard_group() -> None:
    """The national referral standard as published artefacts."""


@standard_group.command("package")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 naming each file that is out of date.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Repository root to write under (default: this checkout).")
def package_command(check: bool, root: Path | None) -> None:
    """Publish the standard: the FHIR package docs/fhir/package.tgz and its resources, and the pages in docs/.

    Writes docs/fhir/*.json (profiles with snapshots, extensions, code systems,
    value sets, concept maps, message definitions), docs/fhir/package.tgz (the
    same resources as a FHIR package, NPM format, that validators load by
    canonical URL), docs/referral-standard.md and docs/standard/*.md.
    """
    from gateway.validation import publish

    argv = (["--check"] if check else []) + (["--root", str(root)] if root else [])
    sys.exit(publish.main(argv))
