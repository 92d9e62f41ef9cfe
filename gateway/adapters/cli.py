"""``gateway formats``, ``translate``, ``synth`` and ``mappings test``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click

from gateway.adapters import all_adapters, get_adapter
from gateway.adapters.base import InputUnreadable
from gateway.adapters.errors import AdapterConflict, MappingError
from gateway.adapters.translate import translate_stream


def _adapter(format_id: str):
    try:
        return get_adapter(format_id)
    except KeyError as exc:
        raise click.BadParameter(exc.args[0], param_hint="--format") from None
    except (AdapterConflict, MappingError, TypeError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command("formats")
def formats_command() -> None:
    """List the source formats: ID<TAB>description, built-in and plug-in."""
    try:
        adapters = all_adapters()
    except (AdapterConflict, MappingError, TypeError) as exc:
        raise click.ClickException(str(exc)) from None
    for adapter in adapters:
        click.echo(f"{adapter.format_id}\t{adapter.description}")


@contextlib.contextmanager
def _output(path: str | None, default):
    if path is None:
        yield default
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        yield handle


def _default_validator():
    """Return the validator every translated Bundle goes through: FHIR R4 base model + the national standard."""
    from gateway.validation import validate_bundle

    def validator(bundle, now):
        return validate_bundle(bundle, now=now, base=True)
    return validator


@click.command("translate")
@click.option("--format", "format_id", required=True, help="Source format id (see `gateway formats`).")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", help="Write message Bundles here as NDJSON (default: standard output).")
@click.option("--errors", "errors_path", help="Write the error report here as JSON lines.")
@click.option("--summary", "summary_path", help="Write the counts here as JSON.")
@click.option("--all", "include_all", is_flag=True, help="Translate records that are not referrals too.")
def translate_command(format_id, input_path, output, errors_path, summary_path, include_all) -> None:
    """Translate INPUT into FHIR message Bundles, one per line.

    Every record ends as a message, as skipped (with the reason) or in the
    error report; the summary's counts always add up. The exit status is
    non-zero only when the input as a whole cannot be read.
    """
    import datetime as dt

    adapter = _adapter(format_id)
    now = dt.datetime.now(dt.timezone.utc)
    validate = _default_validator()
    size = os.path.getsize(input_path)
    show_progress = sys.stderr.isatty() and output is not None
    with open(input_path, "rb") as stream, _output(output, sys.stdout) as out, \
            _output(errors_path, None) as errors:
        bar = click.progressbar(length=size, label="translating", file=sys.stderr) if show_progress else None
        counter = {"n": 0}

        def tick():
            counter["n"] += 1
            if bar is not None and counter["n"] % 500 == 0:
                bar.update(stream.tell() - bar.pos)

        try:
            summary = translate_stream(adapter, stream, Path(input_path).name, out, errors, now=now,
                                       include_all=include_all, validator=lambda b: validate(b, now),
                                       on_record=tick)
        except InputUnreadable as exc:
            raise click.ClickException(f"cannot translate: {exc}") from None
        finally:
            if bar is not None:
                bar.render_finish()
    if summary_path:
        with _output(summary_path, None) as handle:
            json.dump(summary.as_dict(), handle, indent=2)
            handle.write("\n")
    click.echo(summary.text(), err=True)


@click.command("synth")
@click.option("--format", "format_id", required=True, help="Source format id (see `gateway formats`).")
@click.option("--count", type=click.IntRange(min=0), required=True, help="How many records.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here (default: standard output).")
def synth_command(format_id, count, seed, output) -> None:
    """Write deterministic fictional data in a source format, field quirks included."""
    adapter = _adapter(format_id)
    if not hasattr(adapter, "synth"):
        raise click.ClickException(f"the format {format_id!r} has no synthetic data generator")
    try:
        if output:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            with open(output, "wb") as out:
                adapter.synth(out, count, seed=seed)
        else:
            adapter.synth(sys.stdout.buffer, count, seed=seed)
            sys.stdout.buffer.flush()
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("mappings")
def mappings_group() -> None:
    """Work with declarative mappings."""


@mappings_group.command("test")
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--update", is_flag=True, help="Write expected.json from what the mappings produce now (review the diff!).")
def mappings_test_command(path, update) -> None:
    """Run the golden cases and rule checks of every mapping under PATH (default: the installed mappings)."""
    from gateway.adapters.goldens import run_golden_cases
    from gateway.config import Settings

    root = Path(path) if path else Settings.from_env().mappings_dir
    try:
        results = run_golden_cases(root, update=update)
    except MappingError as exc:
        raise click.ClickException(str(exc)) from None
    failed = 0
    for result in results:
        click.echo(f"{'ok  ' if result.passed else 'FAIL'} {result.name}")
        for line in result.messages:
            click.echo(f"     {line}")
        failed += not result.passed
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    if not results:
        raise click.ClickException(f"no golden cases found under {root} (mappings/<format>/cases/<case>/)")
    if failed:
        sys.exit(1)
