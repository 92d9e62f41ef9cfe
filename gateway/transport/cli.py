"""``gateway serve``."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.config import Settings, SettingsError
from gateway.signing.pki import PKIError


@click.command("serve")
@click.option("--certs", "certs_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True,
              help="Certificates directory made by 'gateway certs init' (CA, CRL, gateway cert and key).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8443, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--threads", type=click.IntRange(min=1), default=16, show_default=True,
              help="Threads per worker (each handles one connection at a time).")
@click.option("--no-access-log", is_flag=True, help="Do not log each request.")
def serve_command(certs_dir: Path, host: str, port: int, workers: int, threads: int, no_access_log: bool) -> None:
    """Serve the gateway with mutual TLS (gunicorn, gthread worker).

    Clients must present a certificate issued by the deployment CA, in date
    and not revoked; the CRL is re-read when it changes.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.store import crypto, open_store
    from gateway.store.engine import StoreConfigError
    from gateway.store.schema import require_current
    from gateway.transport.server import GatewayServer

    try:
        settings = Settings.from_env(certs_dir=certs_dir)
        server = GatewayServer(settings, host=host, port=port, workers=workers, threads=threads,
                               access_log=None if no_access_log else "-")
        require_current(settings.database_url)  # refuse at once, not in each worker process's warm-up
        crypto.use(crypto.KeyRing.from_settings(settings))  # the data keys too (GATEWAY_DATA_KEYS) ...
        open_store(settings.database_url).close()  # ... and that they decrypt this database's values
    except (SettingsError, PKIError, StoreConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot reach the database: {str(exc).splitlines()[0]}") from None
    server.run()
