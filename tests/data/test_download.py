"""Downloads against a local HTTP server: progress, resume after an interruption, checksums."""

import hashlib
import http.server
import tarfile
import threading

import numpy as np
import pytest
from PIL import Image

from segcourse.data import download as dl
from segcourse.data.convert import pets_to_folders, tiff_stack_to_folders
from segcourse.data.folders import find_split, read_mask

PAYLOAD = bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8))


class RangeHandler(http.server.BaseHTTPRequestHandler):
    cut_after = None  # bytes to send before dropping the connection, once

    def do_GET(self):
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if RangeHandler.cut_after is not None:
            body, RangeHandler.cut_after = body[:RangeHandler.cut_after], None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def remote(server, sha=None):
    return dl.Remote(f"{server}/file.bin", len(PAYLOAD),
                     sha or hashlib.sha256(PAYLOAD).hexdigest())


def test_an_interrupted_download_resumes_and_verifies(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "CHUNK", 1024)
    RangeHandler.cut_after = 20_000
    with pytest.raises(ConnectionError, match="stopped at 20,000 of 50,000 bytes; run the "):
        dl.download(remote(server), tmp_path, progress=False)
    partial = tmp_path / "file.bin.part"
    assert 0 < partial.stat().st_size < len(PAYLOAD)
    path = dl.download(remote(server), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and not partial.exists()
    assert dl.download(remote(server), tmp_path, progress=False) == path  # no second fetch


def test_a_corrupt_download_is_refused_and_kept_aside(server, tmp_path):
    with pytest.raises(ValueError, match="file.bin is corrupt: its SHA-256 is .* kept as"):
        dl.download(remote(server, sha="0" * 64), tmp_path, progress=False)
    assert (tmp_path / "file.bin.corrupt").exists() and not (tmp_path / "file.bin").exists()


def test_a_broken_archive_says_so(tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tarball")
    with pytest.raises(ValueError, match="cannot unpack"):
        dl.extract(broken, tmp_path / "out")


def test_pets_archives_convert_to_folders(tmp_path):
    """A miniature of the real pet archives: images/*.jpg, annotations/trimaps/*.png (1/2/3),
    annotations/{trainval,test}.txt; packed and unpacked as the script does."""
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "annotations" / "trimaps").mkdir(parents=True)
    names = [f"Abyssinian_{i}" for i in range(1, 6)]
    for name in names:
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(src / "images" / f"{name}.jpg")
        trimap = np.array([[1, 2, 3, 2, 2, 1, 1, 3]] * 6, np.uint8)
        Image.fromarray(trimap, mode="L").save(src / "annotations" / "trimaps" / f"{name}.png")
    listing = "".join(f"{n} 1 1 1\n" for n in names)
    (src / "annotations" / "trainval.txt").write_text(listing[: listing.index(names[4])])
    (src / "annotations" / "test.txt").write_text(f"{names[4]} 1 1 1\n")
    with tarfile.open(tmp_path / "pets.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=".")
    unpacked = dl.extract(tmp_path / "pets.tar.gz", tmp_path / "unpacked")
    out = pets_to_folders(unpacked, tmp_path / "pets", val_fraction=0.25, progress=False)
    train = find_split(out, "train")
    assert len(train.images) == 3 and train.class_names == ("background", "pet")
    np.testing.assert_array_equal(read_mask(train.masks[0])[0], [1, 0, 255, 0, 0, 1, 1, 255])
    assert len(find_split(out, "val").images) == 1 and len(find_split(out, "test").images) == 1


def test_an_em_tiff_stack_converts_to_slices(tmp_path):
    frames = [Image.fromarray(np.full((8, 8), 40 * i, np.uint8)) for i in range(4)]
    labels = [Image.fromarray(np.where(np.eye(8) > 0, 0, 255).astype(np.uint8)) for _ in range(4)]
    frames[0].save(tmp_path / "vol.tif", save_all=True, append_images=frames[1:])
    labels[0].save(tmp_path / "lab.tif", save_all=True, append_images=labels[1:])
    out = tiff_stack_to_folders(tmp_path / "vol.tif", tmp_path / "lab.tif", tmp_path / "em",
                                val_slices=1)
    train = find_split(out, "train")
    assert len(train.images) == 3 and train.class_names == ("cell", "membrane")
    np.testing.assert_array_equal(read_mask(train.masks[0]), np.eye(8))
