"""``gateway directory``: list, add, seed and import, on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import pytest

from gateway.cli import main
from gateway.routing import Directory
from gateway.store.engine import make_engine

from .conftest import POSTGRES_URL


@pytest.fixture
def db(tmp_path, upgraded_sqlite) -> str:
    return upgraded_sqlite(tmp_path / "gateway.sqlite3")


def _run(runner, *args, db=None, env=None):
    extra = ["--database", db] if db else []
    return runner.invoke(main, ["directory", *args, *extra], env=env, catch_exceptions=False)


def _directory(url):
    return Directory(make_engine(url))


def test_seed_then_list(runner, db):
    result = _run(runner, "seed", db=db)
    assert result.exit_code == 0, result.output
    assert "8 agencies, 5 schools, 2 force areas, 6 districts" in result.output
    listed = _run(runner, "list", db=db).output
    assert "urn:x-safeguarding:agency:school:999101  Riverside Infant School  [mailbox]  LA 850" in listed
    assert "urn:x-safeguarding:agency:police:DOR  Dorset Police  [mailbox]  area 838, 839" in listed
    assert "urn:x-safeguarding:agency:la:850  Hampshire children's services (MASH)  [push https://" in listed
    assert "districts SO23, SP10, SP11" in listed
    only_police = _run(runner, "list", "--kind", "police", db=db).output
    assert "DOR" in only_police and "school" not in only_police


def test_list_on_an_empty_directory_says_how_to_seed(runner, db):
    assert "gateway directory seed" in _run(runner, "list", db=db).output


def test_database_from_the_environment(runner, db):
    result = _run(runner, "seed", env={"GATEWAY_DATABASE_URL": db})
    assert result.exit_code == 0
    assert _directory(db).la_for_postcode("SP10 1AA") == "850"


def test_add_agencies(runner, db):
    assert _run(runner, "add", "school", "999120", "Fictional Valley School", "--la", "850",
                "--endpoint", "https://valley.example/fhir", db=db).exit_code == 0
    assert _run(runner, "add", "police", "TVP", "Fictional Valley Police", "--area", "867", "--area", "868",
                db=db).exit_code == 0
    assert _run(runner, "add", "la", "852", "Southampton children's services", "--district", "SO14",
                "--district", "so15", db=db).exit_code == 0
    directory = _directory(db)
    school = directory.school_agency("999120")
    assert (school.delivery, school.endpoint) == ("push", "https://valley.example/fhir")
    assert directory.la_of_school("999120") == "850"
    assert directory.force_area("TVP") == {"867", "868"}
    assert directory.la_for_postcode("SO15 2AA") == "852"


@pytest.mark.parametrize(("args", "message"), [
    (("school", "999120", "No LA School"), "needs --la"),
    (("la", "850", "Hampshire", "--la", "850"), "--la is for schools"),
    (("school", "999120", "X", "--la", "850", "--area", "850"), "--area is for police"),
    (("police", "HAM", "X", "--district", "SP10"), "--district is for local authorities"),
    (("la", "850", "Hampshire", "--endpoint", "http://insecure.example/"), "https"),
    (("school", "12", "Short URN", "--la", "850"), "URN"),
    (("nobody", "1", "X"), "Invalid value"),
])
def test_add_refuses_bad_input_without_a_traceback(runner, db, args, message):
    result = _run(runner, "add", *args, db=db)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_import_reports_counts_and_bad_rows(runner, db, tmp_path):
    csv_file = tmp_path / "postcodes.csv"
    csv_file.write_text("\ufeffpostcode,la_code\nSP10 1AA,850\nBH1 2AA,E06000058\nSO23 8UJ,850\nnowhere,850\n",
                        encoding="utf-8")
    result = _run(runner, "import", str(csv_file), db=db)
    assert result.exit_code == 0, result.output
    assert "postcodes.csv: 4 rows read = 2 imported + 2 rejected + 0 skipped" in result.output
    assert "row 3: LA number 'E06000058'" in result.output and "ONS" in result.output
    assert "row 5: postcode 'nowhere'" in result.output
    assert _directory(db).la_for_postcode("SO23") == "850"


def test_import_with_named_columns(runner, db, tmp_path):
    csv_file = tmp_path / "ons.csv"
    csv_file.write_text("pcd,doterm,dfe\nBH1 2AA,,839\nBH9 9ZZ,202001,839\n", encoding="utf-8")
    result = _run(runner, "import", str(csv_file), "--la-column", "dfe", db=db)
    assert "2 rows read = 1 imported + 0 rejected + 1 skipped" in result.output


@pytest.mark.parametrize(("content", "message"), [
    (b"town,la_code\nAndover,850\n", "no postcode column"),
    (b"", "empty"),
    (b"postcode,la_code\nSP10 1AA,\xff\n", "not UTF-8"),
])
def test_import_of_an_unusable_file_fails_with_a_message(runner, db, tmp_path, content, message):
    csv_file = tmp_path / "bad.csv"
    csv_file.write_bytes(content)
    result = _run(runner, "import", str(csv_file), db=db)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_bad_database_url_is_a_usage_error(runner):
    result = _run(runner, "list", db="mysql://nobody@localhost/x")
    assert result.exit_code == 2 and "unsupported backend" in result.output


@pytest.mark.postgres
def test_seed_and_list_on_postgresql(runner, upgraded_postgres_schema):
    schema, _ = upgraded_postgres_schema
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    assert _run(runner, "seed", db=url).exit_code == 0
    assert "Riverside Infant School" in _run(runner, "list", db=url).output
