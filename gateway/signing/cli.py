"""``gateway certs``, ``gateway sign`` and ``gateway verify``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from gateway.model.systems import AGENCY_KINDS, parse_agency_uri
from gateway.signing import pki
from gateway.signing.messages import format_instant
from gateway.signing.signatures import (
    Signer,
    TrustAnchor,
    UntrustedMessage,
    sign_message,
    verify_message,
)


def _now() -> dt.datetime:
    # The one place the commands read the clock; the library takes ``now``.
    return dt.datetime.now(dt.timezone.utc)


def _read_bundle(path: Path) -> dict:
    try:
        bundle = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise click.ClickException(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: not JSON ({exc})") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise click.ClickException(f"{path}: not a FHIR Bundle (resourceType must be 'Bundle')")
    return bundle


class _PKICommand(click.Command):
    """Turn PKI errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (pki.PKIError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None


@click.group("certs")
def certs_group() -> None:
    """Manage the deployment PKI: CA, gateway and agency certificates, CRL."""


@certs_group.command("init", cls=_PKICommand)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="Safeguarding gateway (development)", show_default=True,
              help="Deployment name, used in the certificates' common names.")
@click.option("--gateway-code", default="national", show_default=True,
              help="The gateway's own code: urn:x-safeguarding:agency:gateway:CODE.")
@click.option("--host", "hosts", multiple=True, help="DNS name or IP the gateway serves on (repeatable; "
              "default localhost and 127.0.0.1).")
def certs_init(directory: Path, name: str, gateway_code: str, hosts: tuple[str, ...]) -> None:
    """Create a deployment CA, the gateway's certificate and an empty CRL in DIRECTORY."""
    pki.create_deployment(directory, now=_now(), name=name, gateway_code=gateway_code,
                          hosts=hosts or ("localhost", "127.0.0.1"))
    click.echo(f"created {directory}: {pki.CA_CERT}, {pki.CA_KEY}, {pki.CRL}, {pki.GATEWAY_CERT}, {pki.GATEWAY_KEY}")
    click.echo("private keys are mode 0600; never commit them")


@certs_group.command("issue", cls=_PKICommand)
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--kind", type=click.Choice(AGENCY_KINDS), required=True, help="What the agency is.")
@click.option("--code", required=True, help="The agency's code: school URN, force code, DfE LA number.")
@click.option("--name", required=True, help="The agency's name (certificate common name).")
@click.option("--days", type=click.IntRange(min=1), default=pki.AGENCY_DAYS, show_default=True,
              help="How long the certificate is valid.")
@click.option("--host", "hosts", multiple=True, help="DNS name or IP the agency serves on (repeatable).")
@click.option("--out", "prefix", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write PREFIX.crt and PREFIX.key.")
def certs_issue(directory: Path, kind: str, code: str, name: str, days: int, hosts: tuple[str, ...],
                prefix: Path) -> None:
    """Issue an agency certificate and key signed by the CA in DIRECTORY."""
    if Path(f"{prefix}.key").exists():
        raise click.ClickException(f"{prefix}.key already exists; choose another --out")
    ca = pki.CertificateAuthority.open(directory)
    cert, key = ca.issue(kind=kind, code=code, name=name, now=_now(), days=days, hosts=hosts)
    cert_path, key_path = pki.write_issued(prefix, cert, key)
    click.echo(f"issued {pki.certificate_agency(cert)} serial {pki.serial_hex(cert.serial_number)} "
               f"valid to {format_instant(cert.not_valid_after_utc)}: {cert_path}, {key_path}")


@certs_group.command("revoke", cls=_PKICommand)
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--serial", "serials", multiple=True, help="Serial number in hex, as 'certs list' shows it.")
@click.option("--agency", help="Revoke every certificate of this agency (URI or KIND:CODE).")
@click.option("--reason", type=click.Choice(list(pki.REVOCATION_REASONS)), default="key-compromise",
              show_default=True, help="superseded/cessation-of-operation keep earlier signatures valid.")
def certs_revoke(directory: Path, serials: tuple[str, ...], agency: str | None, reason: str) -> None:
    """Revoke certificates and rewrite the CRL (a running server picks it up)."""
    if not serials and not agency:
        raise click.UsageError("give --serial or --agency")
    ca = pki.CertificateAuthority.open(directory)
    wanted = {pki.parse_serial(s) for s in serials}
    if agency:
        uri = agency if parse_agency_uri(agency) else f"urn:x-safeguarding:agency:{agency}"
        if parse_agency_uri(uri) is None:
            raise click.ClickException(f"--agency {agency!r} is not an agency (e.g. school:999101)")
        matching = {c.serial_number for c in ca.issued() if pki.certificate_agency(c) == uri}
        if not matching:
            raise click.ClickException(f"no certificate issued by this CA names {uri}")
        wanted |= matching
    ca.write_crl(now=_now(), revoke=sorted(wanted), reason=reason)
    for serial in sorted(wanted):
        click.echo(f"revoked {pki.serial_hex(serial)} ({reason})")


@certs_group.command("crl", cls=_PKICommand)
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--days", type=click.IntRange(min=1), default=pki.CRL_DAYS, show_default=True)
def certs_crl(directory: Path, days: int) -> None:
    """Re-issue the CRL with the same entries (before its next-update time passes)."""
    crl = pki.CertificateAuthority.open(directory).write_crl(now=_now(), days=days)
    click.echo(f"CRL re-issued, next update {format_instant(crl.next_update_utc)}")


@certs_group.command("list", cls=_PKICommand)
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
def certs_list(directory: Path) -> None:
    """List every certificate the CA in DIRECTORY issued, with its state."""
    now = _now()
    for row in pki.CertificateAuthority.open(directory).listing():
        if row.revoked_at is not None:
            state = f"revoked {format_instant(row.revoked_at)} ({row.revocation_reason})"
        elif row.not_after < now:
            state = "expired"
        else:
            state = "valid"
        click.echo(f"{row.serial}  {row.agency or '-'}  {row.name!r}  "
                   f"{format_instant(row.not_before)} .. {format_instant(row.not_after)}  {state}")


@click.command("sign", cls=_PKICommand)
@click.argument("message", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The sending agency's certificate (PREFIX.crt).")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Its private key (PREFIX.key).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the signed Bundle here (default: standard output).")
def sign_command(message: Path, cert_path: Path, key_path: Path, output: Path | None) -> None:
    """Sign MESSAGE (a FHIR message Bundle) as its sending agency."""
    bundle = _read_bundle(message)
    signer = Signer.from_files(cert_path, key_path)
    try:
        signed = sign_message(bundle, signer, now=_now())
    except UntrustedMessage as exc:
        raise click.ClickException(f"{message}: {exc}") from None
    text = json.dumps(signed, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"signed by {signer.agency}: {output}", err=True)


@click.command("verify", cls=_PKICommand)
@click.argument("message", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ca", "ca_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The deployment CA certificate to trust.")
@click.option("--crl", "crl_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The CA's CRL; without it revocation is not checked.")
def verify_command(message: Path, ca_path: Path, crl_path: Path | None) -> None:
    """Verify MESSAGE's signatures offline; exit 0 when valid, 1 naming the reason."""
    bundle = _read_bundle(message)
    trust = TrustAnchor.from_files(ca_path, crl_path)
    try:
        verified = verify_message(bundle, trust, now=_now())
    except UntrustedMessage as exc:
        click.echo(f"invalid ({exc.reason}): {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"valid: signed by {verified.signature.agency} at {format_instant(verified.signature.when)}")
    if verified.sender_signature is not None:
        click.echo(f"valid: sender signature by {verified.sender_signature.agency} "
                   f"at {format_instant(verified.sender_signature.when)}")
    if crl_path is None:
        click.echo("note: no --crl given, revocation not checked", err=True)
