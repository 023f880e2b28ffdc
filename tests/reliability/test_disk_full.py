"""A disk that fills up: one line naming the folder and the space needed, and nothing half-written.

Each test mounts a real, tiny tmpfs (`small_fs`); where that is impossible it skips, saying why."""

from __future__ import annotations

from typer.testing import CliRunner

from agent.cli import app

runner = CliRunner()


def _one_line_error(r) -> str:
    assert r.exit_code == 1, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert "Traceback" not in r.output
    return " ".join(r.output.split())


def test_merge_onto_a_full_disk_is_refused_before_writing(qlora_run, small_fs):
    disk = small_fs(2048)  # the tiny merged model is ~14 MB
    r = runner.invoke(app, ["merge", "--run", str(qlora_run.output_dir), "--out", str(disk / "merged")])
    msg = _one_line_error(r)
    assert str(disk) in msg and "needs about" in msg and "MB" in msg and "nothing was written" in msg
    assert list(disk.iterdir()) == []


def test_merge_that_fills_the_disk_midway_leaves_nothing(qlora_run, small_fs, monkeypatch):
    """The free-space check passed (another process filled the disk meanwhile): the write fails midway,
    the partial folder is removed, and the error says so."""
    import training.merge

    monkeypatch.setattr(training.merge, "require_space", lambda *a, **k: None)
    disk = small_fs(4096)
    r = runner.invoke(app, ["merge", "--run", str(qlora_run.output_dir), "--out", str(disk / "merged")])
    msg = _one_line_error(r)
    assert "disk filled up" in msg and "partial copy was removed" in msg and str(disk) in msg
    assert list(disk.iterdir()) == []
