"""``gateway directory``: list, add, import and seed the routing directory.

The database is ``--database URL`` or, by default, ``GATEWAY_DATABASE_URL``
(:class:`gateway.config.Settings`), at this gateway's schema revision
(``gateway db upgrade``).
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import click

from gateway.model.systems import AGENCY_KINDS
from gateway.routing.codes import DELIVERY_MAILBOX, DELIVERY_PUSH
from gateway.routing.interfaces import Agency, ImportFormatError, School
from gateway.routing.services import SEED_FILE, Directory, open_text
from gateway.store.cli_support import with_engine
from gateway.store.engine import StoreConfigError
from gateway.store.schema import require_current


def _with_directory(command):
    """Open the directory for a command; turn database errors into a message, not a traceback."""

    @with_engine(StoreConfigError)
    @functools.wraps(command)
    def run(engine, **kwargs):
        require_current(engine)
        return command(Directory(engine), **kwargs)

    return run


@click.group("directory")
def directory_group() -> None:
    """The routing directory: agencies, schools, force areas and postcode districts."""


@directory_group.command("list")
@click.option("--kind", type=click.Choice(AGENCY_KINDS), help="Only agencies of this kind.")
@_with_directory
def list_command(directory: Directory, kind: str | None) -> None:
    """List the agencies: identity, name, delivery, and each school's LA or force's area."""
    agencies = directory.agencies(kind)
    if not agencies:
        click.echo("The directory has no agencies; `gateway directory seed` loads the demo directory.")
        return
    for agency in agencies:
        delivery = f"push {agency.endpoint}" if agency.delivery == DELIVERY_PUSH else "mailbox"
        extra = ""
        if agency.kind == "school":
            la = directory.la_of_school(agency.code)
            extra = f"  LA {la}" if la else "  LA unknown"
        elif agency.kind == "police":
            extra = "  area " + (", ".join(sorted(directory.force_area(agency.code))) or "unknown")
        elif agency.kind == "la":
            districts = directory.districts_of(agency.code)
            shown = ", ".join(districts[:8]) + (f" (+{len(districts) - 8})" if len(districts) > 8 else "")
            extra = f"  districts {shown or 'none'}"
        click.echo(f"{agency.uri}  {agency.name}  [{delivery}]{extra}")


@directory_group.command("add")
@click.argument("kind", type=click.Choice(AGENCY_KINDS))
@click.argument("code")
@click.argument("name")
@click.option("--endpoint", metavar="URL", help="Deliver by push to this https:// endpoint (default: mailbox).")
@click.option("--la", "la_code", metavar="NUMBER", help="For a school: the DfE number of its LA (required).")
@click.option("--area", multiple=True, metavar="NUMBER", help="For a police force: an LA in its area (repeat).")
@click.option("--district", multiple=True, metavar="DISTRICT",
              help="For an LA: a postcode district in it (repeat), e.g. SP10.")
@_with_directory
def add_command(directory: Directory, kind: str, code: str, name: str, endpoint: str | None, la_code: str | None,
                area: tuple[str, ...], district: tuple[str, ...]) -> None:
    """Add an agency (or replace the one with the same KIND and CODE).

    KIND is school (CODE = URN), police (force code), la (DfE LA number) or
    gateway. Its certificate identity is urn:x-safeguarding:agency:KIND:CODE.
    """
    if kind == "school" and not la_code:
        raise click.UsageError("a school needs --la, the DfE number of its local authority")
    if la_code and kind != "school":
        raise click.UsageError("--la is for schools")
    if area and kind != "police":
        raise click.UsageError("--area is for police forces")
    if district and kind != "la":
        raise click.UsageError("--district is for local authorities")
    try:
        agency = Agency(kind=kind, code=code, name=name, delivery=DELIVERY_PUSH if endpoint else DELIVERY_MAILBOX,
                        endpoint=endpoint)
        if kind == "school":
            directory.add_school(School(urn=code, name=name, la_code=la_code))
        if area:
            directory.set_force_area(code, area)
        for d in district:
            directory.add_district(d, code)
        directory.add_agency(agency)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"added {agency.uri} ({agency.name})")


@directory_group.command("seed")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=SEED_FILE,
              show_default=True, help="A directory seed file (JSON).")
@_with_directory
def seed_command(directory: Directory, path: Path) -> None:
    """Load the demo directory (Family A's places; fictional schools). Existing entries are kept or replaced."""
    try:
        counts = directory.load_seed(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path.name}: " + ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items()))


@directory_group.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--postcode-column", help="Header of the postcode (or district) column; default: the first of "
              "postcode, district, postcode_district, pcds, pcd, pcd7, pcd8.")
@click.option("--la-column", help="Header of the DfE LA number column; default: the first of la_code, dfe_la, "
              "dfe_la_number, la_number, la.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Districts written per database round trip.")
@click.option("--allow-unknown-la", is_flag=True, help="Accept 3-digit LA numbers not on the known DfE list.")
@_with_directory
def import_command(directory: Directory, csv_file: Path, postcode_column: str | None, la_column: str | None,
                   batch_size: int, allow_unknown_la: bool) -> None:
    """Stream a postcode → LA CSV into the postcode-district table (upsert by district).

    The file has a header row, a postcode column (full postcodes or
    districts) and a DfE LA number column. Bad rows are reported with their
    row numbers and left out; the rest are imported in one transaction.
    """
    try:
        with open_text(csv_file) as stream:
            report = directory.import_postcodes(
                stream, source=csv_file.name, now=dt.datetime.now(dt.timezone.utc), batch_size=batch_size,
                postcode_column=postcode_column, la_column=la_column, allow_unknown_la=allow_unknown_la)
    except ImportFormatError as exc:
        raise click.ClickException(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{csv_file.name}: not UTF-8 ({exc.reason} at byte {exc.start}); "
                                   "save the file as UTF-8 and import again") from None
    click.echo(f"{csv_file.name}: {report.rows_read} rows read = {report.imported} imported + "
               f"{report.rejected} rejected + {report.skipped} skipped (terminated postcodes)")
    for rejected in report.rejections[:20]:
        click.echo(f"  row {rejected.row}: {rejected.reason}")
    if report.rejected > 20:
        click.echo(f"  ... and {report.rejected - 20} more rejected rows")
    if report.conflicting_districts:
        click.echo(f"  {report.conflicting_districts} districts are in more than one LA in this file "
                   "(the last row wins; check them):")
        for text in report.conflicts[:20]:
            click.echo(f"  {text}")
