"""Finding and fetching the real records, with a fake downloader: never the network."""

from __future__ import annotations

from pathlib import Path

import pytest
from record_fixtures import records_dir

from vasopilot import records
from vasopilot.cli import main
from vasopilot.core.errors import VasopilotError


class FakePhysioNet:
    """Answers every file of the record sets: a header that names its record, bytes else."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str, path: str) -> None:
        self.urls.append(url)
        name = url.rsplit("/", 1)[1]
        if name.endswith(".hea"):
            Path(path).write_text(f"{name.removesuffix('.hea')} 1 125 10\n")
        else:
            Path(path).write_bytes(b"\x00" * 20)


EVERY_FILE = sum(len(s.files) for s in records.RECORD_SETS)


def _complete(folder: Path) -> Path:
    records.fetch(folder, download=FakePhysioNet())
    return folder


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment whose every search place is empty."""
    monkeypatch.setattr(records, "shared_dir", lambda: tmp_path / "no-shared")
    return {"XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_fetch_downloads_every_file_once_with_the_citation(tmp_path: Path) -> None:
    fake = FakePhysioNet()
    assert records.fetch(tmp_path, download=fake) == EVERY_FILE
    assert len(set(fake.urls)) == EVERY_FILE
    assert all(url.startswith(records.SOURCE_URL) for url in fake.urls)
    assert records.complete(tmp_path)
    assert "Goldberger" in (tmp_path / "CITATION.txt").read_text()
    assert not list(tmp_path.rglob("*.part"))
    again = FakePhysioNet()
    assert records.fetch(tmp_path, download=again) == 0
    assert again.urls == []


def test_an_error_page_is_not_taken_for_a_header(tmp_path: Path) -> None:
    def error_page(url: str, path: str) -> None:
        Path(path).write_text("<html>404 Not Found</html>")

    with pytest.raises(VasopilotError, match="is not the WFDB header of 041s"):
        records.fetch(tmp_path, download=error_page)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_failed_download_leaves_no_half_file(tmp_path: Path) -> None:
    def unreachable(url: str, path: str) -> None:
        Path(path).write_bytes(b"\x00" * 3)
        raise ConnectionError("physionet unreachable")

    with pytest.raises(VasopilotError, match="physionet unreachable"):
        records.fetch(tmp_path, download=unreachable)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_the_search_order_is_env_then_shared_then_cache(
    tmp_path: Path, nowhere: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert records.find_records(nowhere) is None
    cache = _complete(records.cache_dir(nowhere))
    assert records.find_records(nowhere) == cache
    shared = _complete(tmp_path / "shared")
    monkeypatch.setattr(records, "shared_dir", lambda: shared)
    assert records.find_records(nowhere) == shared
    env = _complete(tmp_path / "env")
    assert records.find_records({**nowhere, records.ENV: str(env)}) == env
    # an incomplete folder named by the variable is passed over, not half used
    (env / "wfdb-python_mimicdb_041s" / "041s02.dat").unlink()
    assert records.find_records({**nowhere, records.ENV: str(env)}) == shared


def test_the_cache_follows_xdg() -> None:
    assert records.cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/vasopilot/records")
    assert records.cache_dir({}) == Path.home() / ".cache" / "vasopilot" / "records"


def test_missing_records_skip_outside_ci_and_fail_under_ci(nowhere: dict[str, str]) -> None:
    with pytest.raises(pytest.skip.Exception, match="make records"):
        records_dir(nowhere)
    with pytest.raises(pytest.fail.Exception, match="REAL ABP RECORDS MISSING"):
        records_dir({**nowhere, "CI": "true"})


def test_data_fetch_command_fills_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(records, "download_file", FakePhysioNet())
    assert main(["data", "fetch", "--dir", str(tmp_path)]) == 0
    assert records.complete(tmp_path)
    assert f"{EVERY_FILE} file(s) downloaded" in capsys.readouterr().out


def test_data_fetch_that_cannot_reach_the_source_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    def unreachable(url: str, path: str) -> None:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(records, "download_file", unreachable)
    assert main(["data", "fetch", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("vasopilot: data fetch: ") and "unreachable" in err[-1]
