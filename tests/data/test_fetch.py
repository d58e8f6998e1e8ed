"""`pad data fetch prime-pantry` against a local HTTP server (no internet needed)."""
import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pad.cli import app
from pad.data.fetch import DATASETS, sha256_of

REPO = Path(__file__).resolve().parents[2]
PRIME_PANTRY = (REPO / "../shared/datasets/prime_pantry").resolve()
FILES = DATASETS["prime-pantry"][1]

pytestmark = pytest.mark.skipif(not PRIME_PANTRY.is_dir(), reason="shared Prime Pantry copy not present")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serve a temp folder holding copies of the shared files; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    for name in FILES:
        shutil.copy(PRIME_PANTRY / name, served / name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def fetch(dest, base_url):
    return CliRunner().invoke(app, ["data", "fetch", "prime-pantry", "--dest", str(dest), "--base-url", base_url])


def test_downloads_and_checks_every_file(server, tmp_path):
    _, url = server
    result = fetch(tmp_path / "raw", url)
    assert result.exit_code == 0, result.output
    for name, sha in FILES.items():
        assert sha256_of(tmp_path / "raw" / name) == sha
    assert not list((tmp_path / "raw").glob(".*tmp"))


def test_checksum_mismatch_writes_nothing(server, tmp_path):
    served, url = server
    (served / "metadata_Prime_Pantry.csv").write_text("asin,title\nX,tampered\n")
    result = fetch(tmp_path / "raw", url)
    assert result.exit_code == 2
    assert "metadata_Prime_Pantry.csv: checksum mismatch" in result.output
    assert not (tmp_path / "raw" / "metadata_Prime_Pantry.csv").exists()
    assert not [p for p in (tmp_path / "raw").iterdir() if p.name.endswith(".tmp")]


def test_missing_file_and_network_failure_are_clear_errors(server, tmp_path):
    served, url = server
    (served / "Prime_Pantry_fre.csv").unlink()
    result = fetch(tmp_path / "raw", url)
    assert result.exit_code == 2 and "HTTP 404" in result.output
    result = fetch(tmp_path / "other", "http://127.0.0.1:1/")  # nothing listens on port 1
    assert result.exit_code == 2 and "download failed" in result.output and "--base-url" in result.output
