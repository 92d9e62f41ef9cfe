"""`gateway demo --workdir`: the demo empties only a folder it made, and refuses any other before it starts."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from gateway.demo import WORKDIR_MARKER, demo_command, prepare_workdir


def _refused(*args: str) -> str:
    """Run the real command with ``args``; return its message, asserting it stopped before the demo."""
    result = CliRunner().invoke(demo_command, list(args))
    # A usage error (2) or a ClickException (1), never a traceback.
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), result.output
    assert "Setting up" not in result.output
    return result.output


def test_the_current_folder_is_refused_and_kept(tmp_path, monkeypatch):
    # The issue: `gateway demo --workdir .` deleted the folder it was run from.
    (tmp_path / "notes.txt").write_text("someone's work")
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path)
    output = _refused("--workdir", ".")
    assert "not made by `gateway demo`" in output and "give a new or empty folder" in output
    assert (tmp_path / "notes.txt").read_text() == "someone's work" and (tmp_path / "project").is_dir()
    assert not (tmp_path / WORKDIR_MARKER).exists()


def test_a_folder_holding_only_hidden_files_is_not_empty(tmp_path):
    (tmp_path / ".git").mkdir()
    _refused("--workdir", str(tmp_path))
    assert (tmp_path / ".git").is_dir()


def test_a_symbolic_link_is_refused_and_its_target_kept(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / WORKDIR_MARKER).write_text("a marker does not make a link the demo's")
    (target / "kept.txt").write_text("x")
    (tmp_path / "link").symlink_to(target, target_is_directory=True)
    assert "not a folder" in _refused("--workdir", str(tmp_path / "link"))
    assert (target / "kept.txt").exists()


def test_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    _refused("--workdir", str(path))
    assert path.read_text() == "x"
    with pytest.raises(click.ClickException, match="not a folder"):
        prepare_workdir(path)


def test_a_missing_folder_is_made_and_marked(tmp_path):
    workdir = tmp_path / "var" / "demo"
    prepare_workdir(workdir)
    assert [p.name for p in workdir.iterdir()] == [WORKDIR_MARKER]


def test_an_empty_folder_is_used_as_it_is(tmp_path):
    workdir = tmp_path / "empty"
    workdir.mkdir()
    inode = workdir.stat().st_ino
    prepare_workdir(workdir)
    assert workdir.stat().st_ino == inode
    assert [p.name for p in workdir.iterdir()] == [WORKDIR_MARKER]


def test_a_folder_an_earlier_run_made_is_emptied_not_deleted(tmp_path):
    workdir = tmp_path / "demo"
    prepare_workdir(workdir)
    inode = workdir.stat().st_ino
    (workdir / "gateway.sqlite3").write_text("old run")
    (workdir / "certs" / "issued").mkdir(parents=True)
    (workdir / "certs" / "issued" / "01.crt").write_text("old certificate")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept.txt").write_text("not the demo's")
    (workdir / "link").symlink_to(outside, target_is_directory=True)

    prepare_workdir(workdir)
    assert workdir.stat().st_ino == inode
    assert [p.name for p in workdir.iterdir()] == [WORKDIR_MARKER]
    assert (outside / "kept.txt").read_text() == "not the demo's"  # a link inside is removed, not followed
