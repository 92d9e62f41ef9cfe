"""``gateway demo``: replay the fictional Family A scenario through the real gateway.

It starts, in a fresh working folder on the embedded SQLite store: a
development PKI, the directory of the scenario's agencies, the gateway over
mutual TLS (``gateway serve``), its outbox worker (``gateway worker``) and a
receiving endpoint for each local authority that verifies every signature
and applies each message once. Then it plays the scenario through the real
HTTP API, each phase on a replay clock set to the day it happened:

1. Sunday 2018-09-30: Dorset Police send the two late PPNs (one per child).
2. Riverside Infant School reads its mailbox (Operation Encompass).
3. Friday 2019-06-07: the school sends its export; the neglect referral for
   Leo goes to Hampshire; Hampshire decides; the outcome reaches the school.

It prints, agency by agency, what arrived, when it was due and what was
flagged. ``--check`` exits 1 when an expected outcome does not hold
(docs/scenario-family-a.md, "What a test of this scenario checks").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import time
from pathlib import Path

import click

from gateway.config import REPO_DIR
from gateway.demo.processes import Processes, free_port, wait_listening
from gateway.model import systems as S
from gateway.transport.client import AgencyClient

DATA = Path(__file__).parent / "family_a"
GATEWAY = S.agency_uri("gateway", "national")
HAMPSHIRE, BCP = S.agency_uri("la", "850"), S.agency_uri("la", "839")
SCHOOL, DORSET = S.agency_uri("school", "999101"), S.agency_uri("police", "DOR")
PHASE_POLICE = "2018-09-30T17:05:00+01:00"    # Sunday: the PPNs arrive three weeks late
PHASE_DISCLOSURE = "2019-03-14T12:00:00+00:00"  # the school sends Mia's first disclosure (a concern, not a referral)
PHASE_SECOND_DISCLOSURE = "2019-05-02T16:00:00+01:00"
PHASE_SCHOOL = "2019-06-07T10:35:00+01:00"    # the school's referral for Leo
ENCOMPASS_DUE = dt.datetime(2018, 10, 1, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
FLAG_ITEMS = {"ppn-submitted-late", "dash", "evidence-not-secured", "evidence", "school-recorded-late",
              "future-date"}


@dataclasses.dataclass
class Arrival:
    """One message that reached (or waits for) one agency."""

    destination: str
    mode: str
    state: str
    event: str
    sender: str
    message_id: str
    due: dt.datetime | None
    payload: dict
    flags: list[str]
    signature: str


def _item(issue: dict) -> str | None:
    for coding in issue.get("details", {}).get("coding", []):
        return coding.get("code")
    return None


def _flags(bundle: dict, now: dt.datetime) -> list[str]:
    """What a receiving LA's system would flag: lateness, missing risk assessment, evidence not secured."""
    from gateway.validation import validate_bundle

    header = bundle["entry"][0]["resource"]
    if header.get("eventCoding", {}).get("code") != S.EVENT_REFERRAL:
        return []
    outcome = validate_bundle(bundle, now=now, base=False)
    return [i["details"]["text"] for i in outcome["issue"]
            if i["severity"] == "warning" and _item(i) in FLAG_ITEMS]


def _child(bundle: dict) -> str:
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            name = (resource.get("name") or [{}])[0]
            text = name.get("text") or " ".join(name.get("given", []) + [name.get("family", "")])
            return f"{text.strip()} (born {resource.get('birthDate', 'unknown')})"
    return "(no child named)"


class Demo:
    """One run of the scenario in ``workdir`` (made afresh)."""

    def __init__(self, workdir: Path, echo=click.echo):
        self.workdir, self.echo = workdir, echo
        self.certs = workdir / "certs"
        self.database_url = f"sqlite:///{workdir / 'gateway.sqlite3'}"
        self.processes = Processes(workdir, {"GATEWAY_DATABASE_URL": self.database_url,
                                             "GATEWAY_CERTS_DIR": str(self.certs)})
        self.gateway_port = free_port()
        self.receivers = {HAMPSHIRE: free_port(), BCP: free_port()}
        self.identities: dict[str, Path] = {}
        self.responses: dict[str, dict] = {}
        self._store = None

    @property
    def store(self):
        """The demo's own view of the gateway's database (opened once, closed by :meth:`run`)."""
        if self._store is None:
            from gateway.store import open_store

            self._store = open_store(self.database_url)
        return self._store

    # -- set-up --------------------------------------------------------------------------

    def make_pki(self) -> None:
        from cryptography.hazmat.primitives import serialization

        from gateway.signing import pki

        # Valid from before the replayed events, so what the gateway signed "in 2018" verifies.
        issued_from = dt.datetime(2018, 1, 1, tzinfo=dt.timezone.utc)
        ca = pki.create_deployment(self.certs, now=issued_from)
        # The gateway's own certificate too must cover both the replayed years and today's handshakes.
        cert, key = ca.issue(kind="gateway", code="national", name="Safeguarding gateway (demo)", now=issued_from,
                             days=3650, hosts=("localhost", "127.0.0.1"))
        (self.certs / pki.GATEWAY_KEY).unlink()  # replaced by the longer-lived one just issued
        pki.write_private_key(self.certs / pki.GATEWAY_KEY, key)
        (self.certs / pki.GATEWAY_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        # The CRL is checked in TLS handshakes against the real time: issue a current one.
        ca.write_crl(now=dt.datetime.now(dt.timezone.utc))
        for uri, name in ((HAMPSHIRE, "Hampshire children's services"), (BCP, "BCP children's services"),
                          (SCHOOL, "Riverside Infant School"), (DORSET, "Dorset Police")):
            kind, code = S.parse_agency_uri(uri)
            cert, key = ca.issue(kind=kind, code=code, name=name, now=issued_from, days=3650,
                                 hosts=("localhost", "127.0.0.1"))
            prefix = self.workdir / "agencies" / f"{kind}-{code}"
            prefix.parent.mkdir(parents=True, exist_ok=True)
            pki.write_issued(prefix, cert, key)
            self.identities[uri] = prefix

    def make_database(self) -> None:
        """Bring the demo's fresh database to this gateway's schema revision (``gateway db upgrade``)."""
        from gateway.store import schema

        schema.upgrade(self.database_url)

    def make_directory(self) -> None:
        from gateway.routing import Agency, Directory

        directory = Directory(self.store.engine)
        directory.load_seed()
        # The LAs' systems are the demo's receiving endpoints on loopback.
        for uri, port in self.receivers.items():
            agency = directory.agency(uri)
            directory.add_agency(Agency(kind="la", code=agency.code, name=agency.name, delivery="push",
                                        endpoint=f"https://127.0.0.1:{port}/fhir/$process-message"))

    def start_receivers(self) -> None:
        import sys

        for uri, port in self.receivers.items():
            kind, code = S.parse_agency_uri(uri)
            name = f"receiver-{kind}-{code}"
            proc = self.processes.start(name, [sys.executable, "-m", "gateway.delivery.receiver",
                                               "--certs", str(self.certs), "--identity", str(self.identities[uri]),
                                               "--receipts", str(self.workdir / f"{name}.sqlite3"),
                                               "--port", str(port), "--threads", "4"])
            wait_listening(port, process=proc, name=name)

    def start_gateway(self, clock_start: str) -> None:
        """(Re)start the gateway and its worker on a replay clock starting at ``clock_start``."""
        self.processes.stop("worker")
        self.processes.stop("gateway")
        extra = {"GATEWAY_CLOCK_START": clock_start}
        self.clock = (dt.datetime.fromisoformat(clock_start), time.monotonic())
        proc = self.processes.start("gateway", self.processes.gateway_command(
            "serve", "--certs", str(self.certs), "--port", str(self.gateway_port), "--threads", "8",
            "--no-access-log"), extra)
        wait_listening(self.gateway_port, process=proc, name="gateway")
        self.processes.start("worker", self.processes.gateway_command(
            "worker", "--certs", str(self.certs), "--poll-seconds", "0.2", "--backoff-base-seconds", "0.5",
            "--backoff-cap-seconds", "2", "--timeout-seconds", "5"), extra)

    def replay_now(self) -> dt.datetime:
        """The gateway's replay clock, as the agencies in the story see it."""
        start, origin = self.clock
        return start + dt.timedelta(seconds=time.monotonic() - origin)

    # -- acting as an agency -----------------------------------------------------------

    def client(self, uri: str) -> AgencyClient:
        from gateway.signing import pki

        prefix = self.identities[uri]
        return AgencyClient(ca_file=self.certs / pki.CA_CERT, cert_file=prefix.with_suffix(".crt"),
                            key_file=prefix.with_suffix(".key"), crl_file=self.certs / pki.CRL)

    def call(self, uri: str, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/fhir+json") -> tuple[int, dict]:
        with self.client(uri) as client:
            reply = client.request(method, f"https://127.0.0.1:{self.gateway_port}{path}", body,
                                   {"Content-Type": content_type} if body is not None else None,
                                   expected_agency=GATEWAY)
        return reply.status, json.loads(reply.body or b"{}")

    def ingest(self, uri: str, format_id: str, name: str, *, incidents: tuple[str, ...] = (),
               concerns: bool = False) -> dict:
        """Send the export ``name`` (only the rows of ``incidents`` when given) as ``uri``; return the answer."""
        content = (DATA / name).read_bytes() if not incidents else school_rows(DATA / name, incidents)
        query = "?concerns=include" if concerns else ""
        status, outcome = self.call(uri, "POST", f"/ingest/{format_id}{query}", content, "application/octet-stream")
        if status != 200:
            raise RuntimeError(f"ingest of {name} answered {status}: {outcome}")
        counts = {e["url"]: e["valueInteger"] for e in outcome["extension"][0]["extension"]}
        self.echo(f"  {name}: {counts['records']} records read = {counts['translated']} translated + "
                  f"{counts['skipped']} skipped + {counts['rejected']} rejected; "
                  f"{counts['accepted']} messages accepted, {counts['refused']} refused")
        for issue in outcome["issue"]:
            text = issue.get("details", {}).get("text", "")
            if ": skipped: " in text or issue["severity"] == "error":
                self.echo(f"    {text}")
        self.responses[name + "".join(incidents)] = outcome
        return outcome

    def wait_delivered(self, timeout: float = 30.0) -> None:
        """Wait until no push delivery is still open (the worker delivered them all)."""
        from sqlalchemy import func, select

        from gateway.delivery.models import OPEN_STATES, PUSH, DeliveryRow

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.store.engine.connect() as conn:
                open_push = conn.execute(select(func.count()).select_from(DeliveryRow).where(
                    DeliveryRow.mode == PUSH, DeliveryRow.state.in_(OPEN_STATES))).scalar_one()
            if open_push == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{open_push} deliveries still open after {timeout:.0f} s; see {self.workdir}")

    def read_mailbox(self, uri: str) -> list[dict]:
        status, bundle = self.call(uri, "GET", "/mailbox")
        if status != 200:
            raise RuntimeError(f"GET /mailbox answered {status}: {bundle}")
        for entry in bundle.get("entry", []):
            delivery_id = entry["fullUrl"].rsplit("/", 1)[1]
            self.call(uri, "POST", f"/mailbox/{delivery_id}/$ack")
        return bundle.get("entry", [])

    def decide(self, referral: dict, now: dt.datetime) -> None:
        """Hampshire's MASH accepts the school's referral for assessment; the outcome goes back."""
        from gateway.routing.messages import build_outcome_message
        from gateway.signing.signatures import Signer, sign_message

        outcome = build_outcome_message(referral, "accepted-for-assessment",
                                        "Neglect concerns with police notices of domestic abuse in the household; "
                                        "a social worker will visit within 5 working days.", HAMPSHIRE, now,
                                        decided_by_name="Hampshire children's services (MASH)")
        prefix = self.identities[HAMPSHIRE]
        signed = sign_message(outcome, Signer.from_files(prefix.with_suffix(".crt"), prefix.with_suffix(".key")),
                              now=now)
        status, answer = self.call(HAMPSHIRE, "POST", "/fhir/$process-message", json.dumps(signed).encode())
        if status != 200:
            raise RuntimeError(f"the outcome was refused ({status}): {answer}")

    def echo_mailbox(self, uri: str) -> None:
        """The agency reads (and acknowledges) its mailbox, as it does every day."""
        for entry in self.read_mailbox(uri):
            header = entry["resource"]["entry"][0]["resource"]
            self.echo(f"  {uri}'s mailbox: {header['eventCoding']['code']} about {_child(entry['resource'])}")

    def echo_escalations(self) -> None:
        from sqlalchemy import select

        from gateway.linkage.models import EscalationRow

        with self.store.engine.connect() as connection:
            for row in connection.execute(select(EscalationRow).order_by(EscalationRow.id)).all():
                self.echo(f"  ESCALATION {row.rule_id}: {row.reason}; alert sent to {row.home_la}")

    # -- the story ---------------------------------------------------------------------

    def run(self) -> list[Arrival]:
        """Play the scenario; return every delivery the gateway made, as :class:`Arrival`s."""
        try:
            self.echo(f"Setting up in {self.workdir}: development PKI, directory, two LA endpoints, "
                      "the gateway over mutual TLS and its worker")
            self.make_pki()
            self.make_database()
            self.make_directory()
            self.start_receivers()

            self.echo(f"\n1. Sunday 30 September 2018: Dorset Police send two PPNs, three weeks after the incident")
            self.start_gateway(PHASE_POLICE)
            self.ingest(DORSET, "ppn-xml", "dorset-police-ppn.xml")
            self.wait_delivered()

            self.echo("\n2. Riverside Infant School reads its mailbox")
            for entry in self.read_mailbox(SCHOOL):
                due = next((e.get("valueInstant") for e in entry.get("extension", [])), None)
                when = dt.datetime.fromisoformat(due.replace("Z", "+00:00")).astimezone(ENCOMPASS_DUE.tzinfo) \
                    .strftime("%a %d %b %Y %H:%M") if due else "no deadline"
                self.echo(f"  {entry['resource']['entry'][0]['resource']['eventCoding']['code']} about "
                          f"{_child(entry['resource'])}, due {when}")

            self.echo("\n3. Thursday 14 March 2019: Mia tells her teacher about violence at home; the school "
                      "records it, does not refer, and sends the concern (it has chosen to)")
            self.start_gateway(PHASE_DISCLOSURE)
            self.ingest(SCHOOL, "schoolsafe-csv", "riverside-infant-school.csv", incidents=("4101",), concerns=True)
            self.wait_delivered()
            self.echo_escalations()
            self.echo_mailbox(SCHOOL)

            self.echo("\n4. Thursday 2 May 2019: a second disclosure by Mia")
            self.start_gateway(PHASE_SECOND_DISCLOSURE)
            self.ingest(SCHOOL, "schoolsafe-csv", "riverside-infant-school.csv", incidents=("4187",), concerns=True)
            self.wait_delivered()
            self.echo_mailbox(SCHOOL)

            self.echo("\n5. Friday 7 June 2019: the school refers Leo; Hampshire decides on the referral")
            self.start_gateway(PHASE_SCHOOL)
            self.ingest(SCHOOL, "schoolsafe-csv", "riverside-infant-school.csv", incidents=("4263",))
            self.wait_delivered()
            referral = next(a.payload for a in self.arrivals() if a.sender == SCHOOL and a.destination == HAMPSHIRE)
            self.decide(referral, self.replay_now())
            outcome_mail = self.read_mailbox(SCHOOL)
            for entry in outcome_mail:
                self.echo(f"  the school's mailbox: {entry['resource']['entry'][0]['resource']['eventCoding']['code']}"
                          f" about {_child(entry['resource'])}")
            return self.arrivals()
        finally:
            self.processes.stop_all()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def arrivals(self) -> list[Arrival]:
        from sqlalchemy import select

        from gateway.delivery.models import DeliveryRow
        from gateway.signing import pki
        from gateway.signing.signatures import TrustAnchor, UntrustedMessage, verify_message

        trust = TrustAnchor.from_files(self.certs / pki.CA_CERT, self.certs / pki.CRL)
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(DeliveryRow).order_by(DeliveryRow.created_at)).all()
        out = []
        for row in rows:
            payload = json.loads(row.payload)
            header = payload["entry"][0]["resource"]
            try:
                # What a receiving agency does, years later, offline: check the signature.
                verified = verify_message(payload, trust, now=dt.datetime.now(dt.timezone.utc))
                signature = f"verified: signed by {verified.signature.agency}"
            except UntrustedMessage as exc:
                signature = f"NOT VERIFIED: {exc}"
            out.append(Arrival(row.destination, row.mode, row.state, header["eventCoding"]["code"],
                               header.get("source", {}).get("endpoint", "?"), row.payload_message_id, row.due_at,
                               payload, _flags(payload, row.created_at), signature))
        return out

    def receipts(self) -> dict[str, dict[str, int]]:
        """Return, per LA endpoint, how many times each message id was applied (must be once)."""
        from gateway.delivery.receiver import ReceiptLog

        out = {}
        for uri in self.receivers:
            kind, code = S.parse_agency_uri(uri)
            path = self.workdir / f"receiver-{kind}-{code}.sqlite3"
            out[uri] = {r.message_id: 1 for r in ReceiptLog(path).applied()} if path.exists() else {}
        return out


NAMES = {HAMPSHIRE: "Hampshire children's services (MASH), DfE LA 850",
         BCP: "Bournemouth, Christchurch and Poole children's services, DfE LA 839",
         SCHOOL: "Riverside Infant School, URN 999101", DORSET: "Dorset Police", GATEWAY: "the gateway"}


def report(arrivals: list[Arrival], echo=click.echo) -> None:
    """Print, agency by agency, what arrived, when it was due and what was flagged."""
    for uri, name in NAMES.items():
        mine = [a for a in arrivals if a.destination == uri]
        echo(f"\n{name}: {len(mine)} message{'s' if len(mine) != 1 else ''}")
        for a in mine:
            due = f", due {a.due.astimezone(ENCOMPASS_DUE.tzinfo).strftime('%a %d %b %Y %H:%M')}" if a.due else ""
            echo(f"  {a.event} from {NAMES.get(a.sender, a.sender)} about {_child(a.payload)}{due}")
            echo(f"    {a.mode}, {a.state}; signature {a.signature}")
            for flag in a.flags:
                echo(f"    FLAG: {flag}")


def check(arrivals: list[Arrival], receipts: dict[str, dict[str, int]]) -> list[str]:
    """Return the scenario's expected outcomes that do not hold (empty when all hold)."""
    failures = []
    ppns = [a for a in arrivals if a.event == S.EVENT_REFERRAL and a.sender == DORSET]
    to_hampshire = [a for a in ppns if a.destination == HAMPSHIRE]
    if len(to_hampshire) != 2:
        failures.append(f"expected 2 PPN referrals to Hampshire, got {len(to_hampshire)}")
    if any(a.destination == BCP for a in arrivals):
        failures.append("a message went to BCP, where the incident happened, not where the children live")
    if len({a.message_id for a in to_hampshire}) != len(to_hampshire):
        failures.append("the two PPNs sharing one reference were treated as one message")
    encompass = [a for a in arrivals if a.event == S.EVENT_ENCOMPASS and a.destination == SCHOOL]
    if len(encompass) != 2:
        failures.append(f"expected 2 Operation Encompass notifications to school 999101, got {len(encompass)}")
    for a in encompass:
        if a.due != ENCOMPASS_DUE:
            failures.append(f"Encompass notification due {a.due}, expected {ENCOMPASS_DUE.isoformat()}")
    school = [a for a in arrivals if a.event == S.EVENT_REFERRAL and a.sender == SCHOOL]
    if [a.destination for a in school] != [HAMPSHIRE]:
        failures.append(f"expected one school referral, to Hampshire; got {[a.destination for a in school]}")
    for a in to_hampshire:
        text = " ".join(a.flags)
        for needle, what in (("21 days", "late submission (21 days)"), ("DASH", "DASH missing")):
            if needle not in text:
                failures.append(f"PPN {a.message_id}: not flagged for {what}")
    if not any("not secured" in " ".join(a.flags).lower() or "not seized" in " ".join(a.flags).lower()
               for a in to_hampshire):
        failures.append("the PPN with unsecured CCTV was not flagged for evidence not secured")
    outcomes = [a for a in arrivals if a.event == S.EVENT_OUTCOME and a.destination == SCHOOL]
    if len(outcomes) != 1:
        failures.append(f"expected the referral outcome to reach the school, got {len(outcomes)}")
    unverified = [a for a in arrivals if not a.signature.startswith("verified")]
    if unverified:
        failures.append(f"{len(unverified)} delivered messages do not verify against the deployment CA")
    not_closed = [a for a in arrivals if a.state != "acknowledged"]
    if not_closed:
        failures.append(f"{len(not_closed)} deliveries not acknowledged: {[a.state for a in not_closed]}")
    pushed = {a.message_id for a in arrivals if a.mode == "push" and a.destination == HAMPSHIRE}
    applied = set(receipts.get(HAMPSHIRE, {}))
    if pushed != applied:
        failures.append(f"Hampshire's endpoint applied {len(applied)} messages, the gateway delivered {len(pushed)}")
    return failures


def school_rows(path: Path, incidents: tuple[str, ...]) -> bytes:
    """The header and the rows of ``incidents`` of a schoolsafe-csv export (a quoted field may hold line breaks:
    a record starts with its incident id)."""
    lines = path.read_bytes().decode("utf-8-sig").splitlines(keepends=True)
    records: list[str] = []
    for line in lines[1:]:
        if line.split(",", 1)[0].isdigit() or not records:
            records.append(line)
        else:
            records[-1] += line
    return (lines[0] + "".join(r for r in records if r.split(",", 1)[0] in incidents)).encode("utf-8")


def check_linkage(store) -> list[str]:
    """Return the linkage outcomes of the scenario that do not hold: the police and school records of Mia and
    Leo are the same two children, the household links them, Leo's chronology is in order with its agencies,
    Hampshire was alerted on 14 March 2019, and the two PPNs are not flagged as duplicates of each other."""
    from sqlalchemy import select

    from gateway.linkage.chronology import chronology
    from gateway.linkage.index import household
    from gateway.linkage.models import EscalationRow, PossibleDuplicateRow
    from gateway.delivery.models import DeliveryRow
    from gateway.store.models import MessagePersonRow

    failures = []
    with store.engine.connect() as connection:
        rows = connection.execute(select(MessagePersonRow.given, MessagePersonRow.source, MessagePersonRow.person_id)
                                  .where(MessagePersonRow.role == "child")).all()
        people: dict[str, set] = {}
        for given, source, person_id in rows:
            people.setdefault(f"{given} from {source}", set()).add(person_id)
        mia = people.get(f"mia rose from {DORSET}", set()) | people.get(f"mia rose from {SCHOOL}", set())
        leo = people.get(f"leo from {DORSET}", set()) | people.get(f"leo from {SCHOOL}", set())
        if len(mia) != 1:
            failures.append(f"Mia's police and school records are {len(mia)} people, not one")
        if len(leo) != 1:
            failures.append(f"Leo's police and school records are {len(leo)} people, not one")
        if len(mia) == 1 and len(leo) == 1:
            (mia_id,), (leo_id,) = mia, leo
            if mia_id == leo_id:
                failures.append("Mia and Leo were taken for one child")
            if mia_id not in household(connection, leo_id):
                failures.append("Leo's household does not include Mia")
            events = chronology(connection, leo_id)["events"]
            agencies = [e["agency"] for e in events]
            if agencies != [DORSET, DORSET, SCHOOL, SCHOOL, SCHOOL, HAMPSHIRE]:
                failures.append(f"Leo's chronology has agencies {agencies}, expected the two PPNs, Mia's two "
                                "disclosures, Leo's referral and Hampshire's decision")
            times = [e["occurred_at"] or e["recorded_at"] for e in events]
            if times != sorted(times, key=lambda t: dt.datetime.fromisoformat(t)):
                failures.append("Leo's chronology is not in the order things happened")
        alerts = connection.execute(select(DeliveryRow.created_at).where(
            DeliveryRow.destination == HAMPSHIRE, DeliveryRow.rule == "escalation:domestic-abuse-notice-then-disclosure"
        )).scalars().all()
        day = dt.datetime.fromisoformat(PHASE_DISCLOSURE).date()
        if not any(a.date() == day for a in alerts):
            failures.append("Hampshire was not alerted on 14 March 2019 (police domestic-abuse notice followed by a "
                            "school disclosure)")
        if not connection.execute(select(EscalationRow.id)).first():
            failures.append("no escalation was raised")
        ppn_ids = set(connection.execute(select(MessagePersonRow.message_id).where(
            MessagePersonRow.source == DORSET)).scalars())
        flagged = connection.execute(select(PossibleDuplicateRow.message_id, PossibleDuplicateRow.duplicate_of)).all()
        if any(a in ppn_ids and b in ppn_ids for a, b in flagged):
            failures.append("the two PPNs were flagged as duplicates of each other")
    return failures


# Written into every folder the demo makes: only a folder holding it is ever cleared.
WORKDIR_MARKER = ".gateway-demo"


def check_audit(demo: "Demo") -> list[str]:
    """Sign a checkpoint of the audit log as the gateway's key and verify the whole chain (``gateway audit
    checkpoint`` then ``gateway audit verify``); return what does not hold."""
    from gateway.audit.checkpoints import write_checkpoint
    from gateway.audit.verify import verify
    from gateway.signing import pki
    from gateway.signing.signatures import Signer, TrustAnchor
    from gateway.store.engine import read_only

    now = dt.datetime.now(dt.timezone.utc)
    signer = Signer.from_files(demo.certs / pki.GATEWAY_CERT, demo.certs / pki.GATEWAY_KEY)
    trust = TrustAnchor.from_files(demo.certs / pki.CA_CERT, demo.certs / pki.CRL)
    engine = demo.store.engine
    with engine.begin() as connection:
        write_checkpoint(connection, signer, now=now)
    with read_only(engine) as connection:
        report = verify(connection, trust, now=now)
    failures = [f"audit log: {problem}" for problem in report.problems]
    if not report.records or not report.checkpoints:
        failures.append(f"audit log: {report.records} records and {report.checkpoints} checkpoints after the story")
    else:
        click.echo(f"audit log: {report.records} records, hash chain and {report.checkpoints} signed "
                   f"checkpoint(s) verified")
    return failures


def prepare_workdir(workdir: Path) -> None:
    """Make ``workdir`` ready for a run: new, or emptied when the demo made it before.

    A missing folder is made; an empty one is used. Either way it gets
    :data:`WORKDIR_MARKER`. A folder holding that marker is emptied (its
    contents, never the folder itself). Raises :class:`click.ClickException`,
    touching nothing, for a non-empty folder without the marker, a symbolic
    link or a file.
    """
    if workdir.is_symlink() or (workdir.exists() and not workdir.is_dir()):
        raise click.ClickException(f"--workdir {workdir}: not a folder (a file or a symbolic link); give a new "
                                   "or empty folder")
    if workdir.is_dir() and not (workdir / WORKDIR_MARKER).is_file() and any(workdir.iterdir()):
        raise click.ClickException(
            f"--workdir {workdir}: this folder is not empty and was not made by `gateway demo`, which empties its "
            f"folder on every run; give a new or empty folder (a folder made by an earlier version of the demo "
            f"has no {WORKDIR_MARKER} file: delete it yourself once)")
    workdir.mkdir(parents=True, exist_ok=True)
    for entry in workdir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (workdir / WORKDIR_MARKER).write_text("Made by `gateway demo`, which empties this folder on every run.\n")


@click.command("demo")
@click.option("--check", "check_only", is_flag=True, help="Exit 1 if an expected outcome of the scenario does not hold.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=REPO_DIR / "var" / "demo",
              show_default=True, help="A new or empty folder, or one an earlier run made (emptied for each run); "
              "logs of every process are kept there.")
@click.option("--serve", is_flag=True, help="Then keep the gateway up with its console until interrupted, printing "
              "its address and a PKCS#12 certificate per agency to import into a browser.")
def demo_command(check_only: bool, workdir: Path, serve: bool = False) -> None:
    """Replay the Family A scenario through the real gateway and show what each agency got."""
    prepare_workdir(workdir)
    demo = Demo(workdir)
    from gateway.signing.pki import PKIError
    from gateway.transport.client import DeliveryError

    try:
        arrivals = demo.run()
    except (RuntimeError, DeliveryError, PKIError) as exc:
        raise click.ClickException(f"the demo could not run: {exc} (process logs in {workdir})") from None
    finally:
        demo.close()
    report(arrivals)
    failures = check(arrivals, demo.receipts()) + check_linkage(demo.store) + check_audit(demo)
    click.echo("")
    if failures:
        for failure in failures:
            click.echo(f"NOT AS EXPECTED: {failure}", err=True)
        if check_only:
            raise SystemExit(1)
    else:
        click.echo("Family A: every expected outcome holds.")
    if serve:
        from gateway.web.console.demo import serve_console

        serve_console(demo)
