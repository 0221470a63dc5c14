"""Downloads against a local HTTP server: progress, resume after an interruption, checksums,
and a way out of every state a download can be left in."""

import hashlib
import http.server
import os
import socket
import tarfile
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from segcourse.data import download as dl
from segcourse.data.convert import pets_to_folders, tiff_stack_to_folders
from segcourse.data.folders import find_split, read_image, read_mask

SIZE = 50_000
PAYLOAD = bytes(np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8))
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.state.payload`` as real servers do: 206 with Content-Range for a Range,
    416 with ``Content-Range: bytes */SIZE`` for a range past the end; ``honour_range=False``
    answers 200 with everything, ``cut_after`` drops the connection after that many bytes
    (once), ``status`` answers that error instead. Every Range header asked is recorded."""

    def do_GET(self):
        state = self.server.state
        state.ranges.append(self.headers.get("Range"))
        body, size = state.payload, len(state.payload)
        if state.status:
            self.send_error(state.status)
            return
        if "Range" in self.headers and state.honour_range:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.cut_after is not None:
            body, state.cut_after = body[:state.cut_after], None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.state = SimpleNamespace(payload=PAYLOAD, honour_range=True, cut_after=None,
                                  status=None, ranges=[])
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def remote(server, sha=None, size=SIZE):
    url = server if isinstance(server, str) else server.url
    return dl.Remote(f"{url}/file.bin", size, sha or SHA)


def test_an_interrupted_download_resumes_and_verifies(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "CHUNK", 1024)
    server.cut_after = 20_000
    with pytest.raises(ConnectionError, match="stopped at 20,000 of 50,000 bytes; run the "):
        dl.download(remote(server), tmp_path, progress=False)
    partial = tmp_path / "file.bin.part"
    assert 0 < partial.stat().st_size < len(PAYLOAD)
    path = dl.download(remote(server), tmp_path, progress=False)
    assert server.ranges == [None, "bytes=20000-"]  # from where it stopped
    assert path.read_bytes() == PAYLOAD and not partial.exists()
    assert dl.download(remote(server), tmp_path, progress=False) == path  # no second fetch
    assert len(server.ranges) == 2


def test_a_complete_part_file_is_checked_without_fetching(server, tmp_path):
    """Stopped during the SHA-256 check: the .part has the pinned size; no request is made."""
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    path = dl.download(remote(server), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and server.ranges == []
    assert not (tmp_path / "file.bin.part").exists()


def test_a_complete_part_file_without_a_size_pin_ends_at_the_servers_416(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    path = dl.download(remote(server, size=None), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and server.ranges == ["bytes=50000-"]


def test_a_part_file_longer_than_the_pin_is_put_aside_and_restarted(server, tmp_path, capsys):
    too_long = PAYLOAD + b"junk"
    (tmp_path / "file.bin.part").write_bytes(too_long)
    path = dl.download(remote(server), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and server.ranges == [None]
    assert (tmp_path / "file.bin.corrupt").read_bytes() == too_long
    assert "50,004 bytes, more than the 50,000 pinned" in capsys.readouterr().err


def test_a_part_file_longer_than_the_servers_file_restarts(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD + b"junk")
    path = dl.download(remote(server, size=None), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and server.ranges == ["bytes=50004-", None]


def test_a_server_that_ignores_range_is_read_from_the_start(server, tmp_path):
    server.honour_range = False
    (tmp_path / "file.bin.part").write_bytes(b"x" * 20_000)  # not the payload's first bytes
    path = dl.download(remote(server), tmp_path, progress=False)
    assert server.ranges == ["bytes=20000-"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA


@pytest.mark.parametrize("part", [0, 20_000, 50_000], ids=["fresh", "resumed", "complete"])
def test_a_wrong_size_pin_names_both_sizes_and_fetches_nothing(server, tmp_path, part):
    """The server's file has 50,000 bytes, the pin 60,000: no retry can help, none is offered;
    the answer's Content-Length / Content-Range (206 or 416) is the server's size."""
    if part:
        (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:part])
    with pytest.raises(dl.SizeMismatch, match="has 50,000 bytes but the pin says 60,000 bytes: "
                       "either the pin is wrong or the server changed") as error:
        dl.download(remote(server, size=60_000), tmp_path, progress=False)
    assert "will not help" in str(error.value) and "to resume" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["file.bin.part"] if part else [])
    if part:
        assert (tmp_path / "file.bin.part").read_bytes() == PAYLOAD[:part]


@pytest.mark.parametrize("wrong", [PAYLOAD[:-1] + b"!", PAYLOAD[:100]], ids=["bytes", "size"])
def test_a_wrong_file_at_the_final_name_is_put_aside_and_fetched_afresh(server, tmp_path,
                                                                          wrong, capsys):
    (tmp_path / "file.bin").write_bytes(wrong)
    path = dl.download(remote(server), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and server.ranges == [None]
    assert (tmp_path / "file.bin.corrupt").read_bytes() == wrong
    assert "is not the pinned file" in capsys.readouterr().err


def test_a_verified_file_is_hashed_once_until_it_changes(server, tmp_path, monkeypatch):
    path = dl.download(remote(server), tmp_path, progress=False)
    assert (tmp_path / "file.bin.sha256").read_text().split()[0] == SHA
    hashed = []
    real = dl.sha256_of
    monkeypatch.setattr(dl, "sha256_of", lambda p, progress=False: hashed.append(p) or real(p))
    assert dl.download(remote(server), tmp_path, progress=False) == path and hashed == []
    stamp = path.stat().st_mtime_ns
    path.write_bytes(PAYLOAD[::-1])  # same size, other bytes, a newer time (set: the clock's
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # tick may be coarser than this test)
    assert dl.download(remote(server), tmp_path, progress=False).read_bytes() == PAYLOAD
    assert hashed == [path, tmp_path / "file.bin.part"] and len(server.ranges) == 2
    assert (tmp_path / "file.bin.corrupt").read_bytes() == PAYLOAD[::-1]


def test_hashing_shows_a_progress_bar_only_when_asked(tmp_path, capsys):
    path = tmp_path / "file.bin"
    path.write_bytes(PAYLOAD)
    assert dl.sha256_of(path) == SHA
    assert capsys.readouterr().err == ""
    assert dl.sha256_of(path, progress=True) == SHA
    assert "checking file.bin" in capsys.readouterr().err


def test_a_file_placed_by_hand_is_verified_and_used(tmp_path):
    (tmp_path / "file.bin").write_bytes(PAYLOAD)
    unreachable = remote(f"http://127.0.0.1:{closed_port()}")
    assert dl.download(unreachable, tmp_path, progress=False).read_bytes() == PAYLOAD


def test_a_corrupt_download_is_refused_and_kept_aside(server, tmp_path):
    with pytest.raises(ValueError, match="file.bin is corrupt: its SHA-256 is .* kept as"):
        dl.download(remote(server, sha="0" * 64), tmp_path, progress=False)
    assert (tmp_path / "file.bin.corrupt").exists() and not (tmp_path / "file.bin").exists()
    assert hashlib.sha256((tmp_path / "file.bin.corrupt").read_bytes()).hexdigest() == SHA


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket is closed


def test_an_unreachable_server_fails_fast_and_says_where_to_put_the_file(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    began = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        dl.download(remote(url), tmp_path, progress=False)
    message = str(error.value)
    assert time.monotonic() - began < 5
    assert f"cannot download {url}/file.bin" in message and "run the script again" in message
    assert f"place it at {tmp_path / 'file.bin'} (50,000 bytes, SHA-256 {SHA})" in message
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_a_silent_server_times_out(tmp_path, monkeypatch):
    """It accepts the connection (the listen backlog) and never answers."""
    monkeypatch.setattr(dl, "TIMEOUT", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        with pytest.raises(ConnectionError, match=f"cannot download {url}/file.bin .*timed out"):
            dl.download(remote(url), tmp_path, progress=False)
    assert time.monotonic() - began < 5


def test_an_http_error_names_the_status_and_the_url(server, tmp_path):
    server.status = 404
    with pytest.raises(ConnectionError, match=f"HTTP 404 .* for {server.url}/file.bin; check "):
        dl.download(remote(server), tmp_path, progress=False)


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


def test_pets_val_is_drawn_by_a_hash_of_the_names_not_the_last_breeds(tmp_path):
    """trainval.txt lists the pictures by breed: its last tenth would be a few breeds that
    training never sees. Val is the names that come first by sha256("<seed>:<name>")."""
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "annotations" / "trimaps").mkdir(parents=True)
    names = [f"{breed}_{i}" for breed in ("Abyssinian", "beagle", "yorkshire_terrier")
             for i in range(1, 5)]
    for value, name in enumerate(names):
        Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(src / "images" / f"{name}.jpg")
        Image.fromarray(np.full((4, 4), 1, np.uint8), mode="L").save(
            src / "annotations" / "trimaps" / f"{name}.png")
    (src / "annotations" / "trainval.txt").write_text("".join(f"{n} 1 1 1\n" for n in names))
    (src / "annotations" / "test.txt").write_text("")
    out = pets_to_folders(src, tmp_path / "pets", val_fraction=0.25, progress=False)
    by_hash = sorted(names, key=lambda n: hashlib.sha256(f"0:{n}".encode()).hexdigest())
    val = sorted(p.stem for p in (out / "val" / "images").iterdir())
    train = sorted(p.stem for p in (out / "train" / "images").iterdir())
    assert val == sorted(by_hash[:3]) and val != names[-3:]
    assert sorted(val + train) == sorted(names)


def test_a_16_bit_em_stack_keeps_its_grey_levels(tmp_path):
    levels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000  # 0 .. 63,000
    frames = [Image.fromarray(levels + i) for i in range(3)]
    labels = [Image.fromarray(np.full((8, 8), 255, np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "vol.tif", save_all=True, append_images=frames[1:])
    labels[0].save(tmp_path / "lab.tif", save_all=True, append_images=labels[1:])
    out = tiff_stack_to_folders(tmp_path / "vol.tif", tmp_path / "lab.tif", tmp_path / "em",
                                val_slices=1)
    image = read_image(find_split(out, "train").images[0])
    np.testing.assert_allclose(image[..., 0], levels / 65535.0, atol=1e-6)  # not clipped to 1
