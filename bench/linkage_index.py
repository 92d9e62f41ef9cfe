"""Person-index benchmark: link look-ups per second and p99 at scale, and the chronology of a busy child.

    .venv/bin/python bench/linkage_index.py                        # 1,000,000 people, SQLite and PostgreSQL
    .venv/bin/python bench/linkage_index.py --people 100000 --lookups 500 --backends sqlite

For each backend it builds two indexes of fictional children, a small one
(:data:`SMALL_INDEX` people, the baseline) and one of ``--people``, each in a
fresh database brought to the schema by the migrations (SQLite in a temporary
folder; PostgreSQL in a fresh schema of database ``test``, dropped at the end).
The people are loaded as already-decided records, one person per true person
with every record's blocking keys (:func:`gateway.linkage.matching.blocking_keys`),
in large batches straight through the driver (PostgreSQL: COPY): that is
set-up, timed and printed, not measured.

Then, on each index, the same ``--lookups`` query records (after a few
uncounted warm-up ones) each go through the accept path's linking in a
transaction of its own, committed: ``PersonIndex(connection, model).add(...)``
as ``Linkage.accept_step`` calls it (blocking keys, candidate people, their
records, :func:`~gateway.linkage.matching.decide`, then the record written
with its person, its keys, the decision and any possible match). The
record's message is left out (``message_id`` None, as an initial load's
record): storing the message is not linking. Beside each look-up, on the
same connection, the floor: the record row alone inserted and committed. Most queries are copies of
indexed children as another agency holds them (typos, nicknames, a house
move, a transposed or wrong date of birth, given and family swapped, some
with an NHS number or UPN); :data:`NEW_SHARE` are children the index does
not hold. Every query's child is one of the small index's people, so both
indexes hold the same truth and only the crowd around it grows.

Printed per index: look-ups/s, p50/p95/p99 milliseconds, CPU milliseconds
per look-up of this process (``time.process_time``) and of the PostgreSQL
backend serving it (from /proc), the decisions' mix and how many linked to
the true person. Then the chronology of one child with
:data:`CHRONOLOGY_EVENTS` events (and a household, deadlines, escalations,
possible duplicates) in the large index, timed :data:`CHRONOLOGY_RUNS`
times beside a trivial ``SELECT 1`` on the same connection, and the query
plan of the candidate query.

Goals (from the issue): look-up p99 under 20 ms against 1,000,000 people;
chronology p99 under 50 ms for a child with 200 events. The machine is
shared: compare figures within one run. Nothing is asserted.

The generated children are not :mod:`gateway.linkage.synth`'s (it draws
every NHS number at random from the 999 range until unused and keeps six
postcode districts, which a million people exhaust or crowd): names come
from synth's lists of common given names and surnames (a steep popularity)
plus a long tail (``data/given-names.txt``, invented surnames), birth dates
2005-2024, households of siblings at one postcode across ~2,400 districts,
twins, moves, schools, NHS numbers and UPNs unique by construction. Index
records are built in normalised form; the first ones are checked against
:func:`~gateway.linkage.matching.normalise` (it must leave them unchanged).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from stdnum.gb import upn as stdnum_upn  # noqa: E402

from gateway.adapters.synth import fictional  # noqa: E402
from gateway.linkage import index as linkage_index  # noqa: E402
from gateway.linkage import synth  # noqa: E402
from gateway.linkage.chronology import chronology  # noqa: E402
from gateway.linkage.index import PersonIndex  # noqa: E402
from gateway.linkage.matching import (  # noqa: E402
    MatchModel,
    PersonRecord,
    blocking_keys,
    fold_name,
    known_given_names,
    nickname_groups,
    nicknames_by_formal_name,
    normalise,
)
from gateway.linkage.models import (  # noqa: E402
    LINKED,
    NEW,
    OPEN,
    DeadlineRow,
    EscalationRow,
    LinkKeyRow,
    MessageEventRow,
    PersonRow,
    PossibleDuplicateRow,
    RelationRow,
)
from gateway.model import systems as S  # noqa: E402
from gateway.model.identifiers import known_la_numbers  # noqa: E402
from gateway.runtime import settle  # noqa: E402
from gateway.store import schema  # noqa: E402
from gateway.store.engine import make_engine  # noqa: E402
from gateway.store.models import AcceptedMessageRow, MessagePersonRow  # noqa: E402

POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GOAL_LOOKUP_P99_MS = 20.0
GOAL_CHRONOLOGY_P99_MS = 50.0
#: People in the baseline index; every query's child is one of them.
SMALL_INDEX = 10_000
#: Share of queries about children the index does not hold.
NEW_SHARE = 0.15
WARMUP_LOOKUPS = 50
CHRONOLOGY_EVENTS = 200
CHRONOLOGY_RUNS = 500
#: People generated and loaded per batch (one transaction, one COPY per table on PostgreSQL).
LOAD_BATCH = 20_000
HOME_LA = S.agency_uri("la", "850")
NOW = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)

_MP = MessagePersonRow.__table__
_KEY = LinkKeyRow.__table__
_PERSON = PersonRow.__table__

# ---------------------------------------------------------------------------------------------------------------
# Fictional children, streamed

#: Postcode areas (letters of the outward code), each with districts 1-20: about 2,400 districts.
POSTCODE_AREAS = (
    "AB AL B BA BB BD BH BL BN BR BS CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT DY E EC EH EN EX FK "
    "FY G GL GU HA HD HG HP HR HS HU HX IG IP KA KT KW KY L LA LD LE LL LN LS LU M ME MK ML N NE NG NN NP NR NW "
    "OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL SM SN SO SP SR SS ST SW SY TA TD TF TN TQ TR TS TW UB W "
    "WA WD WF WN WR WS WV YO").split()
#: Invented surnames for the long tail: every combination of these parts (about 12,000 names).
_TAIL_PARTS = (
    ("ash", "brack", "thorn", "mar", "quill", "fern", "haw", "lind", "oak", "raven", "wren", "gorse", "heath",
     "mill", "pen", "stan", "whit", "black", "brook", "cal", "dun", "elm", "fair", "gar", "hol", "kin", "lang",
     "mor", "nor", "pem"),
    ("", "a", "i", "o", "er", "en", "el"),
    ("", "ley", "wood", "ridge", "ford", "mere", "wick", "combe", "by", "well", "ton", "field", "hurst", "stead",
     "gate", "dale", "worth", "shaw", "more", "bury"),
    ("", "s", "e"),
)
#: Share of children whose surname is one of synth's common surnames (Zipf within them): Smith is then
#: about 1.7% of children (1.3% in England and Wales); the rest come from the invented tail.
COMMON_SURNAME_SHARE = 0.25
#: Share of given names from synth's popular lists (Zipf); the rest from data/given-names.txt, evenly.
POPULAR_GIVEN_SHARE = 0.75
NHS_SHARE = 0.85            # children with an NHS number (unique; the 999 range holds ~909,000)
MOVED, CHANGED_SCHOOL, TWINS = 0.20, 0.10, 0.015
#: Records per child in the index (sources that know them) and their weights: 2.05 on average.
RECORDS_PER_CHILD = ((1, 2, 3, 4), (35, 35, 20, 10))
SOURCES = {  # source: (P(NHS number shown), P(UPN shown))
    "school": (0.05, 0.85), "health": (0.90, 0.0), "police": (0.10, 0.0), "childrens-services": (0.50, 0.30)}


@dataclasses.dataclass(frozen=True)
class Child:
    """One fictional child as they truly are (names folded, as the index keeps them)."""

    number: int
    person_id: str
    given: str
    middle: str | None
    family: str
    birth: dt.date
    sex: str
    postcodes: tuple[str, ...]      # home, then after a move
    school: str
    nhs_number: str | None
    upn: str | None


def _zipf(n: int, s: float) -> list[float]:
    return [1.0 / (rank + 1) ** s for rank in range(n)]


class Children:
    """Households of fictional children, deterministic for a seed, with identifiers unique by construction.

    ``nhs_from_end`` and ``upn_base`` keep a second generator's identifiers
    apart from the first's (the queries' new children).
    """

    def __init__(self, seed: int, *, nhs_from_end: bool = False, upn_base: int = 0):
        self.rng = random.Random(seed)
        stems = list(range(1_000_000))
        random.Random(7).shuffle(stems)  # one permutation for every generator: ends never meet below ~900,000
        self._stems = iter(reversed(stems) if nhs_from_end else stems)
        self._upn_serial = upn_base
        self._count = 0
        self.surnames = [fold_name(s) for s in synth.SURNAMES]
        self.surname_weights = _zipf(len(self.surnames), 0.6)
        tail = {"".join(parts) for parts in _product(_TAIL_PARTS)} - set(self.surnames)
        self.tail = sorted(t for t in tail if len(t) >= 4)
        random.Random(11).shuffle(self.tail)
        self.tail_weights = _zipf(len(self.tail), 0.5)
        self.popular = {"male": [fold_name(n) for n in synth.BOY_NAMES], "female": [fold_name(n) for n in synth.GIRL_NAMES]}
        self.popular_weights = {sex: _zipf(len(names), 0.7) for sex, names in self.popular.items()}
        self.other_given = sorted(known_given_names() - set(self.popular["male"]) - set(self.popular["female"])
                                  - set(nickname_groups()))
        self.middle = {sex: [fold_name(n) for n in names] for sex, names in synth.MIDDLE_NAMES.items()}
        self.schools = [f"999{n:03d}" for n in range(1000)]
        self.las = sorted(f"{n:03d}" for n in known_la_numbers())
        self.nicknames = nicknames_by_formal_name()

    def surname(self) -> str:
        r = self.rng
        if r.random() < COMMON_SURNAME_SHARE:
            return r.choices(self.surnames, self.surname_weights)[0]
        return r.choices(self.tail, self.tail_weights)[0]

    def given(self, sex: str, avoid: set[str]) -> str:
        r = self.rng
        while True:
            if r.random() < POPULAR_GIVEN_SHARE:
                name = r.choices(self.popular[sex], self.popular_weights[sex])[0]
            else:
                name = r.choice(self.other_given)
            if name not in avoid:
                return name

    def postcode(self, district: str | None = None) -> str:
        r = self.rng
        letters = fictional.POSTCODE_LETTERS
        district = district or f"{r.choice(POSTCODE_AREAS)}{r.randrange(1, 21)}"
        return f"{district} {r.randrange(10)}{r.choice(letters)}{r.choice(letters)}"

    def nhs_number(self) -> str | None:
        for stem in self._stems:
            nine = f"999{stem:06d}"
            check = fictional.nhs_check_digit(nine)
            if check != 10:
                return f"{nine}{check}"
        return None  # the 999 range is used up: the rest have none

    def upn(self, birth: dt.date) -> str:
        self._upn_serial += 1
        n = self._upn_serial
        body = f"{self.rng.choice(self.las)}{2000 + n // 1000:04d}{(birth.year + 4) % 100:02d}{n % 1000:03d}"
        return stdnum_upn.calc_check_digit(body) + body

    def household(self) -> list[Child]:
        """Return the children of one new household (1 to 4, sometimes twins), siblings first-born first."""
        r = self.rng
        family = self.surname()
        if r.random() < 0.08:
            other = self.surname()
            family = f"{family}-{other}" if other != family else family
        home = self.postcode()
        moved = None
        if r.random() < MOVED:
            moved = self.postcode(home.split(" ")[0] if r.random() < 0.6 else None)
        postcodes = (home, moved) if moved else (home,)
        school = r.choice(self.schools)
        used: set[str] = set()
        out = []
        births = sorted(dt.date(2005, 1, 1) + dt.timedelta(days=r.randrange(7305))
                        for _ in range(r.choice((1, 1, 2, 2, 2, 3, 3, 4))))
        if r.random() < TWINS:
            births.insert(0, births[0])
        for birth in births:
            sex = r.choice(("male", "female"))
            given = self.given(sex, used)
            used.add(given)
            self._count += 1
            nhs = self.nhs_number() if r.random() < NHS_SHARE else None
            out.append(Child(
                number=self._count, person_id=str(uuid.UUID(int=r.getrandbits(128), version=4)), given=given,
                middle=r.choice(self.middle[sex]) if r.random() < 0.25 else None,
                family=family if r.random() < 0.9 else self.surname(), birth=birth, sex=sex,
                postcodes=postcodes, school=school if r.random() >= CHANGED_SCHOOL else r.choice(self.schools),
                nhs_number=nhs, upn=self.upn(birth)))
        return out

    def children(self, count: int) -> Iterator[Child]:
        """Yield ``count`` children, household by household (the last household may be cut short)."""
        made = 0
        while made < count:
            for child in self.household():
                if made == count:
                    return
                made += 1
                yield child

    def typo(self, text: str) -> str:
        return synth._Generator.typo(self, text)  # the same slips synth makes (it reads only self.rng)

    def records(self, child: Child) -> list[tuple[str, PersonRecord]]:
        """Return the index's records of ``child``: one per source that knows them, each as that source has it."""
        r = self.rng
        out = []
        for _ in range(r.choices(*RECORDS_PER_CHILD)[0]):
            source = r.choice(tuple(SOURCES))
            p_nhs, p_upn = SOURCES[source]
            given = child.given
            if given in self.nicknames and r.random() < 0.10:
                given = r.choice(self.nicknames[given])
            if r.random() < 0.02:
                given = self.typo(given)
            if child.middle and r.random() < 0.40:
                given = f"{given} {child.middle}"
            family = child.family
            if "-" in family and r.random() < 0.40:
                family = r.choice(family.split("-"))
            if r.random() < 0.02:
                family = self.typo(family)
            out.append((source, PersonRecord(
                given=given, family=family,
                birth_date=None if r.random() < 0.02 else child.birth.isoformat(),
                sex=None if r.random() < 0.10 else child.sex,
                postcode=None if r.random() < 0.10 else r.choice(child.postcodes),
                nhs_number=child.nhs_number if child.nhs_number and r.random() < p_nhs else None,
                upn=child.upn if r.random() < p_upn else None,
                school_urn=child.school if source == "school" else None)))
        return out


def _product(parts):
    if not parts:
        yield ()
        return
    for head in parts[0]:
        for rest in _product(parts[1:]):
            yield (head, *rest)


# ---------------------------------------------------------------------------------------------------------------
# Queries: another agency's record of a child, as the accept path receives it


@dataclasses.dataclass(frozen=True)
class Query:
    """One look-up: the raw values as a message gives them, normalised, and the true person (None: new)."""

    raw: dict
    record: PersonRecord
    truth: str | None
    changes: tuple[str, ...]


def query_of(gen: Children, child: Child, truth: str | None) -> Query:
    """Return a record of ``child`` as a new message would carry it, with one or two things changed."""
    r = gen.rng
    given, family, birth, postcode = child.given, child.family, child.birth, child.postcodes[-1]
    changes = r.sample(("given typo", "nickname", "family typo", "moved", "birth date transposed",
                        "birth date wrong", "no birth date", "no postcode", "swapped", "none"),
                       r.choice((1, 1, 2))) if truth else ["new child"]
    if "nickname" in changes and given in gen.nicknames:
        given = r.choice(gen.nicknames[given])
    if "given typo" in changes:
        given = gen.typo(given)
    if "family typo" in changes:
        family = gen.typo(family)
    if "moved" in changes:
        postcode = gen.postcode()
    birth_text = birth.strftime("%d/%m/%Y") if r.random() < 0.3 else birth.isoformat()
    if "birth date transposed" in changes and birth.day <= 12 and birth.day != birth.month:
        birth_text = birth.replace(month=birth.day, day=birth.month).isoformat()
    if "birth date wrong" in changes:
        birth_text = synth._wrong_component(r, birth).isoformat()
    if "no birth date" in changes:
        birth_text = None
    if "no postcode" in changes:
        postcode = None
    if "swapped" in changes:
        given, family = family, given
    source = r.choice(tuple(SOURCES))
    p_nhs, p_upn = SOURCES[source]
    nhs = child.nhs_number if child.nhs_number and r.random() < p_nhs else None
    raw = {"given": given.title(), "family": family.title(), "birth_date": birth_text,
           "sex": None if r.random() < 0.1 else child.sex[0].upper(), "postcode": postcode,
           "nhs_number": f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}" if nhs else None,
           "upn": child.upn if r.random() < p_upn else None,
           "school_urn": child.school if source == "school" else None}
    return Query(raw, normalise(**raw), truth, tuple(changes))


def make_queries(pool: list[Child], count: int, seed: int) -> list[Query]:
    """Return ``count`` queries: children of ``pool`` (each at most once) and, :data:`NEW_SHARE`, new ones."""
    gen = Children(seed + 1000, nhs_from_end=True, upn_base=4_000_000)
    new = round(count * NEW_SHARE)
    known = gen.rng.sample(pool, min(count - new, len(pool)))
    queries = [query_of(gen, child, child.person_id) for child in known]
    queries += [query_of(gen, child, None) for child in gen.children(count - len(queries))]
    gen.rng.shuffle(queries)
    return queries


# ---------------------------------------------------------------------------------------------------------------
# Backends: a fresh database at the schema's head, and the bulk load

_PERSON_COLUMNS = ("id", "kind", "created_at")
_MP_COLUMNS = ("id", "source", "source_record", "resource", "role", "nhs_number", "upn", "family", "given",
               "birth_date", "postcode", "postcode_district", "sex", "school_urn", "person_id", "link_decision",
               "link_by_person")
_KEY_COLUMNS = ("key", "record_id")


def _binder(table, columns: tuple[str, ...], dialect):
    """Return ``bind(*values) -> tuple``: each value through its column type's bind processing, if it has one."""
    processors = [table.c[name].type.bind_processor(dialect) for name in columns]

    def bind(*values):
        return tuple(value if process is None or value is None else process(value)
                     for process, value in zip(processors, values))

    return bind


class Database:
    """One fresh database for one index: SQLite in ``workdir``, or a fresh PostgreSQL schema."""

    def __init__(self, backend: str, name: str, workdir: Path):
        self.backend = backend
        if backend == "sqlite":
            self.url = f"sqlite:///{workdir / (name + '.sqlite3')}"
            self.connect_args: dict = {}
            self.schema = None
        else:
            self.url = POSTGRES_URL
            self.schema = f"bench_{name}_{uuid.uuid4().hex[:12]}"
            admin = make_engine(POSTGRES_URL)
            try:
                with admin.begin() as connection:
                    connection.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            finally:
                admin.dispose()
            self.connect_args = {"options": f"-csearch_path={self.schema}", "application_name": self.schema}
        engine = self.engine()
        try:
            schema.upgrade(engine)
        finally:
            engine.dispose()

    def engine(self):
        """Return a new engine on this database, as the gateway makes it."""
        return make_engine(self.url, connect_args=dict(self.connect_args)) if self.connect_args else make_engine(self.url)

    def drop(self) -> None:
        """Drop the PostgreSQL schema (the SQLite file goes with the work folder)."""
        if self.schema is None:
            return
        admin = make_engine(POSTGRES_URL)
        try:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        finally:
            admin.dispose()

    # -- the bulk load ------------------------------------------------------------------------------------------

    def load(self, gen: Children, people: int, keep: int) -> tuple[float, list[Child], dict]:
        """Load ``people`` children of ``gen``; return seconds taken, the first ``keep`` children and counts."""
        engine = self.engine()
        kept: list[Child] = []
        counts = Counter()
        begin = time.perf_counter()
        created = _PERSON.c.created_at.type.bind_processor(engine.dialect)
        created_at = created(NOW) if created else NOW  # as SQLAlchemy would bind it (SQLite: a string)
        # The records and keys as SQLAlchemy would bind them too: the personal data encrypted, the blocking keys
        # as keyed hashes (gateway.store.crypto; GATEWAY_ENCRYPT_AT_REST=off loads them clear).
        bind_record, bind_key = _binder(_MP, _MP_COLUMNS, engine.dialect), _binder(_KEY, _KEY_COLUMNS, engine.dialect)
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            if self.backend == "sqlite":
                # Set-up only: this connection is closed (and the engine disposed) before anything is measured.
                for pragma in ("synchronous=OFF", "cache_size=-1000000", "foreign_keys=OFF"):
                    driver.execute(f"PRAGMA {pragma}")
            record_id = 0
            stream = gen.children(people)
            checked = 0
            while True:
                batch = [child for _, child in zip(range(LOAD_BATCH), stream)]
                if not batch:
                    break
                persons, records, keys = [], [], []
                for child in batch:
                    if len(kept) < keep:
                        kept.append(child)
                    persons.append((child.person_id, "child", created_at))
                    for n, (source, record) in enumerate(gen.records(child)):
                        if checked < 2000:  # the records are in normal form: normalise leaves them as they are
                            again = normalise(**dataclasses.asdict(record))
                            if again != record:
                                raise RuntimeError(f"bench generator: {record} is not normalised ({again})")
                            checked += 1
                        record_id += 1
                        records.append(bind_record(record_id, source, f"{child.number}-{n}", "bench", "child",
                                        record.nhs_number, record.upn, record.family, record.given,
                                        record.birth_date, record.postcode,
                                        record.postcode.split(" ")[0] if record.postcode else None, record.sex,
                                        record.school_urn, child.person_id, NEW if n == 0 else LINKED, False))
                        keys.extend(bind_key(key, record_id) for key in dict.fromkeys(blocking_keys(record)))
                self._write(driver, persons, records, keys)
                counts.update(people=len(persons), records=len(records), keys=len(keys))
            if self.backend == "postgresql":
                with driver.cursor() as cursor:
                    cursor.execute("SELECT setval(pg_get_serial_sequence('message_person', 'id'), %s)",
                                   (max(record_id, 1),))
                driver.commit()
        finally:
            raw.close()
            engine.dispose()
        loaded = time.perf_counter() - begin
        analyse = time.perf_counter()
        self._analyse()
        counts["analyse_s"] = round(time.perf_counter() - analyse, 1)
        return loaded, kept, counts

    def _write(self, driver, persons: list, records: list, keys: list) -> None:
        tables = (("person", _PERSON_COLUMNS, persons), ("message_person", _MP_COLUMNS, records),
                  ("person_link_key", _KEY_COLUMNS, keys))
        if self.backend == "sqlite":
            driver.execute("BEGIN")
            for table, columns, rows in tables:
                driver.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                   f"({', '.join('?' * len(columns))})", rows)
            driver.execute("COMMIT")
            return
        with driver.cursor() as cursor:
            for table, columns, rows in tables:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        driver.commit()

    def _analyse(self) -> None:
        """Bring the planner's statistics up to date, as autovacuum would soon after a load."""
        engine = self.engine()
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                if self.backend == "sqlite":
                    connection.exec_driver_sql("ANALYZE")
                else:
                    for table in ("person", "message_person", "person_link_key"):
                        connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
        finally:
            engine.dispose()


# ---------------------------------------------------------------------------------------------------------------
# Measurements


def _quantiles(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) >= 2 else [values[0]] * 99
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": max(values)}


def _backend_cpu(pid: int | None) -> float:
    """CPU seconds used so far by the PostgreSQL backend ``pid`` (from /proc; 0 without one)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _record_row(query: Query, n: int) -> dict:
    record = query.record
    return {"message_id": None, "source": S.agency_uri("school", "999101"), "source_record": f"query-{n}",
            "resource": f"Patient/query-{n}", "role": "child", **dataclasses.asdict(record),
            "postcode_district": record.postcode.split(" ")[0] if record.postcode else None}


def _link_one(connection, model: MatchModel, query: Query, n: int, *, link: bool = True):
    """The accept path's linking of one record (``PersonIndex.add``, as ``Linkage.accept_step`` calls it), in its
    own transaction; return the Linked and the seconds the commit took. With ``link`` false (the floor) the
    record row is only inserted, unlinked, and None is returned for the Linked."""
    transaction = connection.begin()
    try:
        linked = None
        if link:
            linked = PersonIndex(connection, model).add(_record_row(query, n), query.record, kind="child",
                                                        now=NOW + dt.timedelta(seconds=n), home_la=HOME_LA)
        else:
            connection.execute(insert(_MP), _record_row(query, n))
    except BaseException:
        transaction.rollback()
        raise
    before = time.perf_counter()
    transaction.commit()
    return linked, time.perf_counter() - before


def measure_lookups(db: Database, model: MatchModel, queries: list[Query], warmup: list[Query]) -> dict:
    """Link every query (after the warm-up ones) and return the figures."""
    engine = db.engine()
    try:
        with engine.connect() as connection:
            pid = None
            if db.backend == "postgresql":
                pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                connection.commit()
            for n, query in enumerate(warmup):
                _link_one(connection, model, query, -1 - n)
            with connection.begin():
                sized = PersonIndex(connection, model).model   # the thresholds for this index's size
            # As a gateway process does once started (gateway.runtime): what is alive now (here the set-up's
            # children and queries too) leaves garbage collection, whose full passes would otherwise walk it.
            settle()
            thresholds = (sized.people, sized.link_threshold, sized.possible_threshold)
            durations, cpu, commits, linked_ids, floor = [], [], [], [], []
            outcomes, decisions = Counter(), Counter()
            load_before = os.getloadavg()[0]
            backend_used = 0.0
            for n, query in enumerate(queries):
                backend_at = _backend_cpu(pid)
                t0, c0 = time.perf_counter(), time.process_time()
                linked, commit = _link_one(connection, model, query, n)
                durations.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                backend_used += _backend_cpu(pid) - backend_at
                commits.append(commit * 1000)
                linked_ids.append(linked.record_id)
                decisions[linked.decision] += 1
                if query.truth is None:
                    outcomes["new child: " + linked.decision] += 1
                elif linked.decision == LINKED:
                    outcomes["known child: linked " + ("right" if linked.person_id == query.truth else "WRONG")] += 1
                else:
                    outcomes["known child: " + linked.decision] += 1
                # The floor, interleaved so that it meets the same machine: the record row alone, committed.
                t0 = time.perf_counter()
                _link_one(connection, model, query, -100_000 - n, link=False)
                floor.append((time.perf_counter() - t0) * 1000)
            load_after = os.getloadavg()[0]
            # Untimed, afterwards: how many candidate people (and their records) each look-up read.
            crowd = []
            with connection.begin():
                index = PersonIndex(connection, model)
                for query, record_id in zip(queries, linked_ids):
                    found = index._candidates(record_id, blocking_keys(query.record), "child")
                    crowd.append((len(found), sum(len(c.records) for c in found)))
    finally:
        engine.dispose()
    commit = _quantiles(commits)
    slowest = sorted(range(len(queries)), key=lambda i: -durations[i])[:5]
    floor = _quantiles(floor)
    # Look-ups per second of linking alone (one after another): the interleaved floor transactions are left out.
    return {"lookups_per_s": len(queries) * 1000 / sum(durations), **_quantiles(durations),
            "cpu_ms": statistics.fmean(cpu), "db_cpu_ms": backend_used * 1000 / len(queries) if pid else None,
            "commit_p50": commit["p50"], "commit_p99": commit["p99"], "floor_p50": floor["p50"],
            "floor_p99": floor["p99"], "decisions": decisions, "outcomes": outcomes,
            "load_avg": (load_before, load_after), "thresholds": thresholds,
            "candidates": _quantiles([float(c) for c, _ in crowd]), "records_read": _quantiles([float(r) for _, r in crowd]),
            "slowest": [(durations[i], cpu[i], commits[i], *crowd[i], queries[i].changes) for i in slowest]}


def candidate_plan(db: Database, query: Query) -> str:
    """Return the database's plan of the index's candidate query for ``query``'s keys (PostgreSQL: run, with
    the time and buffers of each step)."""
    engine = db.engine()
    try:
        statement = linkage_index._CANDIDATE_PEOPLE.params(keys=blocking_keys(query.record), kind="child",
                                                           record_id=0)
        sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN QUERY PLAN " if db.backend == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(explain + sql).all()
    finally:
        engine.dispose()
    lines = [" ".join(str(v) for v in row[-1:]) for row in rows] if db.backend == "sqlite" else [row[0] for row in rows]
    return "\n".join(["    " + sql.replace("\n", " "), *("    " + line for line in lines)])


def make_chronology(db: Database) -> str:
    """Make one child with :data:`CHRONOLOGY_EVENTS` events, a household, deadlines, escalations and possible
    duplicates; return the child's person id."""
    rng = random.Random(5)
    engine = db.engine()
    child, mother, partner, sibling = (str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(4))
    senders = [S.agency_uri("school", "999101"), S.agency_uri("police", "TST"), HOME_LA,
               S.agency_uri("school", "999102")]
    kinds = ("safeguarding-concern", "safeguarding-referral", "operation-encompass-notification", "referral-outcome")
    start = dt.datetime(2019, 1, 7, 9, tzinfo=dt.timezone.utc)
    people = {child: ("child", "Ada", "2014-03-04"), mother: ("MTH", "Bea", "1988-06-01"),
              partner: ("FTH", "Cal", "1986-02-11"), sibling: ("SIB", "Dot", "2016-09-30")}
    messages, events, records, deadlines = [], [], [], []
    for n in range(CHRONOLOGY_EVENTS):
        mid = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        sender, kind = senders[n % len(senders)], kinds[n % len(kinds)]
        occurred = start + dt.timedelta(days=9 * n, hours=rng.randrange(12))
        received = occurred + dt.timedelta(days=rng.choice((0, 0, 1, 3)), hours=2)
        messages.append({"message_id": mid, "sender_agency": sender, "received_at": received,
                         "message_timestamp": received, "payload_sha256": "0" * 64, "raw_message": "{}",
                         "signed_message": "{}", "response_status": 200, "response_body": "{}"})
        about = sibling if n % 10 == 9 else child   # one in ten is about the sibling: a household event
        events.append({"message_id": mid, "sender_agency": sender, "kind": kind, "child_person_id": about,
                       "occurred_at": occurred, "recorded_at": occurred + dt.timedelta(hours=1),
                       "received_at": received, "categories": json.dumps(["neglect"] if n % 3 else ["domestic-abuse"]),
                       "risk": "medium", "summary": f"Fictional event {n + 1} of the benchmark's child.",
                       "source_record": f"bench-{n}", "version": 1,
                       "late_days": 3 if kind == "operation-encompass-notification" and n % 8 == 2 else None})
        named = [about] + ([mother] if n % 2 == 0 else []) + ([partner] if n % 5 == 0 else [])
        for who in named:
            role, given, birth = people[who]
            records.append({"message_id": mid, "source": sender, "source_record": f"bench-{n}", "resource": "Patient/x",
                            "role": role, "given": given.lower(), "family": "testchild", "birth_date": birth,
                            "person_id": who, "link_decision": LINKED})
        if kind == "safeguarding-referral":
            deadlines.append({"message_id": mid, "agency": HOME_LA, "kind": "referral-decision",
                              "due_at": received + dt.timedelta(days=1), "created_at": received,
                              "met_at": received + dt.timedelta(hours=20)})
    relations = [{"person_id": child, "related_person_id": who, "relation": role, "message_id": messages[0]["message_id"]}
                 for who, role in ((mother, "MTH"), (partner, "FTH"), (sibling, "household"))]
    try:
        with engine.begin() as connection:
            connection.execute(insert(_PERSON), [{"id": p, "kind": "child" if role in ("child", "SIB") else "adult",
                                                  "created_at": start, "home_la": HOME_LA}
                                                 for p, (role, _, _) in people.items()])
            connection.execute(insert(AcceptedMessageRow.__table__), messages)
            connection.execute(insert(MessageEventRow.__table__), events)
            connection.execute(insert(_MP), records)
            connection.execute(insert(RelationRow.__table__), relations)
            connection.execute(insert(DeadlineRow.__table__), deadlines)
            connection.execute(insert(EscalationRow.__table__), [
                {"rule_id": f"rule-{n}", "person_id": child, "message_id": messages[40 * n + 3]["message_id"],
                 "trigger_key": f"{n:064d}", "triggers": json.dumps([messages[40 * n + 3]["message_id"]]),
                 "reason": "Fictional escalation", "home_la": HOME_LA, "flag": json.dumps({"resourceType": "Flag"}),
                 "raised_at": messages[40 * n + 3]["received_at"]} for n in range(2)])
            connection.execute(insert(PossibleDuplicateRow.__table__), [
                {"message_id": messages[n + 1]["message_id"], "duplicate_of": messages[n]["message_id"],
                 "similarity": 0.95, "reason": "Fictional near-identical narrative", "status": OPEN,
                 "home_la": HOME_LA, "created_at": messages[n + 1]["received_at"]} for n in (10, 50, 120)])
        if db.backend == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return child


def measure_chronology(db: Database, child: str) -> dict:
    """Time :func:`chronology` of ``child`` and a trivial SELECT, each in its own transaction, on one connection."""
    engine = db.engine()
    try:
        with engine.connect() as connection:
            with connection.begin():
                view = chronology(connection, child)
            if len(view["events"]) != CHRONOLOGY_EVENTS:
                raise RuntimeError(f"the benchmark's child has {len(view['events'])} events, not {CHRONOLOGY_EVENTS}")
            figures = {}
            for name, call in (("chronology", lambda: chronology(connection, child)),
                               ("SELECT 1", lambda: connection.exec_driver_sql("SELECT 1").scalar())):
                durations, cpu = [], []
                for _ in range(CHRONOLOGY_RUNS):
                    t0, c0 = time.perf_counter(), time.process_time()
                    with connection.begin():
                        call()
                    durations.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
                figures[name] = {**_quantiles(durations), "cpu_ms": statistics.fmean(cpu)}
    finally:
        engine.dispose()
    return figures


# ---------------------------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_backend(backend: str, people: int, lookups: int, seed: int, model: MatchModel, workdir: Path) -> dict:
    """Build both indexes on ``backend``, measure look-ups on each and the chronology on the large one."""
    sizes = sorted({min(SMALL_INDEX, people), people})
    rows, chrono, plan = [], None, None
    queries = warmup = None
    for size in sizes:
        db = Database(backend, f"{size}", workdir)
        try:
            print(f"[{backend}] loading {size:,} people ...", flush=True)
            seconds, kept, counts = db.load(Children(seed), size, min(SMALL_INDEX, people))
            print(f"[{backend}] loaded {counts['people']:,} people, {counts['records']:,} records, "
                  f"{counts['keys']:,} keys in {seconds:.1f} s (+{counts['analyse_s']} s analyse)", flush=True)
            if queries is None:
                made = make_queries(kept, lookups + WARMUP_LOOKUPS, seed)
                warmup, queries = made[:WARMUP_LOOKUPS], made[WARMUP_LOOKUPS:]
            figures = measure_lookups(db, model, queries, warmup)
            figures.update(backend=backend, size=size, load_s=seconds, records=counts["records"], keys=counts["keys"])
            rows.append(figures)
            print(f"[{backend}] {size:,}: {figures['lookups_per_s']:.0f} look-ups/s, p99 {figures['p99']:.2f} ms",
                  flush=True)
            if size == sizes[-1]:
                plan = candidate_plan(db, next(q for q in queries if q.truth))
                chrono = measure_chronology(db, make_chronology(db))
        finally:
            db.drop()
    return {"rows": rows, "chronology": chrono, "plan": plan}


def _terminated(signum, frame):
    print("terminated: dropping the benchmark's databases", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000, help="people in the large index")
    parser.add_argument("--lookups", type=int, default=2000, help="look-ups measured on each index")
    parser.add_argument("--backends", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.people < 1 or args.lookups < 2:
        parser.error("--people must be at least 1 and --lookups at least 2")
    # A terminated run still drops its PostgreSQL schemas and removes its SQLite files (the finally blocks).
    signal.signal(signal.SIGTERM, _terminated)
    if "sqlite" in args.backends:
        # make_engine says so at every engine; once is enough here.
        print("SQLite is for development and demos only; the gateway's deployments use PostgreSQL", flush=True)
        logging.getLogger("gateway.store.engine").setLevel(logging.ERROR)
    model = MatchModel.load()
    results = {}
    workdir = Path(tempfile.mkdtemp(prefix="linkage-bench-"))
    try:
        for backend in args.backends:
            name = "postgresql" if backend == "postgres" else "sqlite"
            try:
                results[name] = run_backend(name, args.people, args.lookups, args.seed, model, workdir)
            except OperationalError as exc:
                print(f"{name}: cannot use the database ({POSTGRES_URL if name == 'postgresql' else workdir}): "
                      f"{exc.orig}", file=sys.stderr)
                return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nLink look-ups: {args.lookups} per index, each its own committed transaction "
          f"(goal: p99 under {GOAL_LOOKUP_P99_MS:.0f} ms at 1,000,000 people)")
    print(f"{'backend':<11}{'people':>10}{'records':>10}{'keys':>11}{'load s':>8}{'look-ups/s':>11}{'p50 ms':>8}"
          f"{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}{'cpu ms':>8}{'db cpu ms':>10}{'commit p50/p99':>16}{'floor p50/p99':>16}{'load avg':>12}")
    for result in results.values():
        for row in result["rows"]:
            print(f"{row['backend']:<11}{row['size']:>10,}{row['records']:>10,}{row['keys']:>11,}{row['load_s']:>8.0f}"
                  f"{row['lookups_per_s']:>11.0f}{row['p50']:>8.2f}{row['p95']:>8.2f}{row['p99']:>8.2f}"
                  f"{row['max']:>8.2f}{row['cpu_ms']:>8.2f}{_ms(row['db_cpu_ms']):>10}"
                  f"{row['commit_p50']:>9.2f}/{row['commit_p99']:<6.2f}{row['floor_p50']:>9.2f}/{row['floor_p99']:<6.2f}"
                  f"{row['load_avg'][0]:>6.1f}-{row['load_avg'][1]:<5.1f}")
    print("(cpu ms: this process's CPU per look-up; db cpu ms: the PostgreSQL backend's; commit: the commit alone;"
          " floor: inserting the record row and committing, without linking, after each look-up on the same"
          f" connection; load avg: the machine's 1-minute load before and after, on {os.cpu_count()} cores)")
    print("\nDecisions (known child: the index holds the child; new child: it does not)")
    for result in results.values():
        for row in result["rows"]:
            mix = ", ".join(f"{k} {v}" for k, v in sorted(row["decisions"].items()))
            truth = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
            people, link, possible = row["thresholds"]
            print(f"  {row['backend']:<11}{row['size']:>10,}: {mix}  ({truth}); thresholds for {people:,} people:"
                  f" link {link:.1f}, possible {possible:.1f}")
    print("\nCandidate people / their records read per look-up (p50, p99, max), and the 5 slowest look-ups "
          "(ms, cpu ms, commit ms, people, records, what the query changed)")
    for result in results.values():
        for row in result["rows"]:
            c, r = row["candidates"], row["records_read"]
            print(f"  {row['backend']:<11}{row['size']:>10,}: people {c['p50']:.0f}/{c['p99']:.0f}/{c['max']:.0f},"
                  f" records {r['p50']:.0f}/{r['p99']:.0f}/{r['max']:.0f}")
            for ms, cpu, commit, people, records, changes in row["slowest"]:
                print(f"  {'':<21}  {ms:7.2f} {cpu:6.2f} {commit:6.2f} {people:4d} {records:5d}  {', '.join(changes)}")
    print(f"\nChronology of one child with {CHRONOLOGY_EVENTS} events, {CHRONOLOGY_RUNS} times, in the large index "
          f"(goal: p99 under {GOAL_CHRONOLOGY_P99_MS:.0f} ms)")
    print(f"{'backend':<11}{'what':<12}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}{'cpu ms':>8}")
    for name, result in results.items():
        for what, row in (result["chronology"] or {}).items():
            print(f"{name:<11}{what:<12}{row['p50']:>8.2f}{row['p95']:>8.2f}{row['p99']:>8.2f}{row['max']:>8.2f}"
                  f"{row['cpu_ms']:>8.2f}")
    for name, result in results.items():
        print(f"\nCandidate query plan ({name}, large index):\n{result['plan']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
