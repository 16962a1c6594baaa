"""The real arterial-pressure records: where they are found, and fetching them into a cache.

The records are small excerpts of PhysioNet's MIMIC Database (``mimicdb``) and MIMIC-III
Waveform Database (``mimic3wdb``) as published, unchanged, in the sample data of the
``wfdb`` package's repository (MIT-LCP/wfdb-python). ``vasopilot data fetch`` downloads those
same files with ``wfdb``'s downloader, so the tests and benchmarks see the bytes their
expectations were built on, with the citation beside them.

They are looked for, in order, in ``$VASOPILOT_RECORDS``, in ``../shared/data/abp`` beside the
repository, and in the cache (``$XDG_CACHE_HOME/vasopilot/records``, by default
``~/.cache/vasopilot/records``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vasopilot.core.errors import VasopilotError

ENV = "VASOPILOT_RECORDS"
SOURCE_URL = "https://raw.githubusercontent.com/MIT-LCP/wfdb-python/main/sample-data/"
CITATION = """\
Real arterial-pressure records for vasopilot's tests and benchmarks.

Excerpts of ICU recordings from PhysioNet's MIMIC Database (mimicdb) and MIMIC-III Waveform
Database (mimic3wdb), as published in the sample data of the wfdb-python repository
({source}). PhysioNet publishes these databases under the Open Data Commons Attribution
licence. When you use them, cite:

  Goldberger AL, Amaral LAN, Glass L, Hausdorff JM, Ivanov PCh, Mark RG, Mietus JE, Moody GB,
  Peng C-K, Stanley HE. PhysioBank, PhysioToolkit, and PhysioNet: components of a new research
  resource for complex physiologic signals. Circulation 101(23):e215-e220 (2000).

and the database: Moody GB, Mark RG, "A database to support development and evaluation of
intelligent intensive care monitoring", Computers in Cardiology 23:657-660 (1996) (mimicdb);
Johnson AEW et al., "MIMIC-III, a freely accessible critical care database", Scientific Data
3:160035 (2016) (mimic3wdb).
"""


@dataclass(frozen=True)
class RecordSet:
    """One folder of the records: where it comes from and the files it holds."""

    folder: str
    database: str
    source_path: str  # under SOURCE_URL
    files: tuple[str, ...]


RECORD_SETS = (
    RecordSet("wfdb-python_mimicdb_041s", "mimicdb", "multi-segment/041s/",
              ("041s.hea", "041s01.hea", "041s01.dat", "041s02.hea", "041s02.dat")),
    RecordSet("wfdb-python_mimicdb_03700181", "mimicdb", "",
              ("03700181.hea", "03700181.dat", "03700181.sqrs", "03700181.gqrsh",
               "03700181.gqrsl")),
    RecordSet("wfdb-python_mimic3wdb_s00001", "mimic3wdb", "multi-segment/s00001/",
              ("3975656_0013.hea", "3975656_0013.dat", "3975656_0015.hea",
               "3975656_0015.dat")),
    RecordSet("wfdb-python_mimic3wdb_s25047", "mimic3wdb", "multi-segment/s25047/",
              ("3234460_0017.hea", "3234460_0017.dat", "3234460_0018.hea",
               "3234460_0018.dat")),
)

Downloader = Callable[[str, str], object]  # (url, local file), wfdb's dl_full_file


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vasopilot" / "records"


def shared_dir() -> Path:
    """``../shared/data/abp`` beside the repository this package runs from."""
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "abp"


def search_path(env: Mapping[str, str] = os.environ) -> list[Path]:
    """Where the records are looked for, first to last."""
    places = [Path(env[ENV])] if env.get(ENV) else []
    return [*places, shared_dir(), cache_dir(env)]


def complete(folder: Path) -> bool:
    """Whether ``folder`` holds every file of every record set."""
    return all((folder / s.folder / name).is_file() for s in RECORD_SETS for name in s.files)


def find_records(env: Mapping[str, str] = os.environ) -> Path | None:
    """The first place on :func:`search_path` that holds all the records, if any."""
    return next((place for place in search_path(env) if complete(place)), None)


def download_file(url: str, path: str) -> object:
    """One file with wfdb's downloader (the only place that touches the network)."""
    from wfdb.io.download import dl_full_file

    return dl_full_file(url, path)


def fetch(dest: Path, *, download: Downloader | None = None,
          say: Callable[[str], None] = lambda _line: None) -> int:
    """Download every missing file into ``dest`` and write the citation; returns the count.

    ``download`` defaults to :func:`download_file`, looked up when called.

    Each file lands under a temporary name first, so an interrupted fetch leaves no half file
    that would pass for a record; a header must name its record, so an error page does not.
    """
    fetched = 0
    for record_set in RECORD_SETS:
        folder = dest / record_set.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name in record_set.files:
            target = folder / name
            if target.is_file():
                continue
            url = SOURCE_URL + record_set.source_path + name
            partial = target.with_name(name + ".part")
            say(f"{url} -> {target}")
            try:
                (download or download_file)(url, str(partial))
            except Exception as exc:  # wfdb raises requests' and its own errors alike
                partial.unlink(missing_ok=True)
                raise VasopilotError(f"data fetch: {url}: {exc}") from None
            if name.endswith(".hea") and not _names_record(partial, name.removesuffix(".hea")):
                partial.unlink()
                raise VasopilotError(f"data fetch: {url} is not the WFDB header of "
                                     f"{name.removesuffix('.hea')}")
            partial.replace(target)
            fetched += 1
    (dest / "CITATION.txt").write_text(CITATION.format(source=SOURCE_URL))
    return fetched


def _names_record(header: Path, record: str) -> bool:
    try:
        first = header.read_text(errors="replace").split(maxsplit=1)
    except OSError:
        return False
    return bool(first) and first[0].split("/")[0] == record
