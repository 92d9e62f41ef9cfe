"""``gateway keys``: the data keys of encryption at rest (docs/encryption.md).

``new`` writes a key file, ``add`` puts a new current key in one,
``rotate`` brings every stored value under the current key (in batches,
while the gateway runs), and ``status`` counts what is not there yet.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from gateway.config import Settings, SettingsError
from gateway.store import crypto
from gateway.store.crypto import KEY_ID, key_file_text, new_key
from gateway.store.engine import StoreConfigError


@click.group("keys")
def keys_group() -> None:
    """Data keys of encryption at rest: make a key file, add a key, rotate, show what is left to rotate."""


def _open_store(database_url: str | None):
    from gateway.store import open_store

    try:
        settings = Settings.from_env()
        crypto.use(crypto.KeyRing.from_settings(settings))
        return open_store(database_url or settings.database_url)
    except (SettingsError, StoreConfigError) as exc:
        raise click.ClickException(str(exc)) from None


_database = click.option("--database", "database_url", metavar="URL",
                         help="Database URL; default: GATEWAY_DATABASE_URL.")


@keys_group.command("new")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id", "key_id", default="k1", show_default=True, help="The first key's id.")
def new_command(path: Path, key_id: str) -> None:
    """Write a new key file at PATH (0600): one data key, current, and a hash key. Refuses to overwrite."""
    _check_id(key_id)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; refusing to overwrite keys (use `gateway keys add`)") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key_file_text({key_id: new_key()}, key_id, new_key()))
    click.echo(f"{path}: key {key_id} (current) and a hash key; set GATEWAY_DATA_KEYS={path}")


@keys_group.command("add")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--id", "key_id", required=True, help="The new key's id (letters, digits, - or _).")
def add_command(path: Path, key_id: str) -> None:
    """Add a new key to the key file PATH and make it current; the old keys stay to read older values.

    Then restart the gateway's processes (they read the keys at start) and
    run `gateway keys rotate`.
    """
    _check_id(key_id)
    crypto.KeyRing.load(path)  # refuse a file that does not load as it is
    data = json.loads(path.read_text(encoding="utf-8"))
    if key_id in data["keys"]:
        raise click.ClickException(f"{path} already has a key {key_id!r}")
    data["keys"][key_id] = new_key()
    data["current"] = key_id
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)
    click.echo(f"{path}: key {key_id} is current; restart the gateway's processes, then run `gateway keys rotate`")


@keys_group.command("rotate")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Rows per transaction.")
@_database
def rotate_command(batch_size: int, database_url: str | None) -> None:
    """Encrypt every value under the current key (older keys' and clear values), in batches, while the gateway
    runs; clear blocking keys become keyed hashes. Safe to stop and run again."""
    from gateway.store.crypto import DecryptionError
    from gateway.store.keys import remaining, rotate

    store = _open_store(database_url)
    try:
        def report(progress):
            click.echo(f"  {progress.table}: {progress.rows} rows read, {progress.rewritten} rewritten"
                       + (" (done)" if progress.done else ""))

        try:
            results = rotate(store, batch_size=batch_size, progress=report)
        except (ValueError, DecryptionError) as exc:
            raise click.ClickException(str(exc)) from None
        left = {name: count for name, count in remaining(store).items() if count}
    finally:
        store.close()
    click.echo(f"rotated to key {crypto.active().current}: {sum(p.rewritten for p in results)} values rewritten")
    if left:  # written meanwhile by a process that still had the old keys: restart it and run again
        click.echo("still not under the current key (a process still runs with the old key file? restart it and "
                   "rotate again): " + ", ".join(f"{name} {count}" for name, count in sorted(left.items())))
        raise click.exceptions.Exit(1)


@keys_group.command("status")
@_database
def status_command(database_url: str | None) -> None:
    """Count the stored values not under the current key (0 everywhere: an older key may be removed)."""
    from gateway.store.keys import remaining

    store = _open_store(database_url)
    try:
        counts = remaining(store)
    finally:
        store.close()
    ring = crypto.active()
    click.echo(f"current key {ring.current}; keys held: {', '.join(sorted(ring.keys))}")
    for name, count in sorted(counts.items()):
        click.echo(f"  {name}: {count} not under the current key")
    if any(counts.values()):
        raise click.exceptions.Exit(1)


def _check_id(key_id: str) -> None:
    if not KEY_ID.match(key_id):
        raise click.UsageError(f"--id {key_id!r}: use 1-32 letters, digits, - or _")
