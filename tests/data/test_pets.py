"""Oxford-IIIT Pet through tfds, offline: tfds.testing.mock_data serves generated examples in
the dataset's real feature format (image, 1/2/3 trimap); the download host is a local port (one
that answers, one that refuses, one that never answers), never the network."""

import http.server
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from segcourse.data import pets
from segcourse.labs.dry_run import FAKE_PETS, fake_pets_examples


def test_trimap_values_become_classes_or_ignore():
    trimap = tf.constant([[1, 2, 3]])
    np.testing.assert_array_equal(pets.trimap_to_labels(trimap, "ignore"), [[1, 0, 255]])
    np.testing.assert_array_equal(pets.trimap_to_labels(trimap, "class"), [[1, 0, 2]])
    with pytest.raises(ValueError, match="border must be one of"):
        pets.trimap_to_labels(trimap, "drop")


def test_the_train_split_size_is_the_one_tfds_slices():
    """The steps of a pets epoch come from pets.TRAIN_IMAGES, not from the data: it must be the
    size of tfds' slice SPLITS["train"] of the 3,680 images of its "train" split."""
    instruction = tfds.core.ReadInstruction.from_spec(pets.SPLITS["train"])
    info = tfds.core.SplitInfo(name="train", shard_lengths=[pets.TRAINVAL_IMAGES], num_bytes=0)
    (absolute,) = instruction.to_absolute({"train": info})
    assert (absolute.from_ or 0, absolute.to) == (0, pets.TRAIN_IMAGES) == (0, 3312)


class Answering(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def answering_host(monkeypatch):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answering)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(pets, "HOST", f"http://127.0.0.1:{httpd.server_address[1]}/")
    yield
    httpd.shutdown()
    httpd.server_close()


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize("border, allowed", [("ignore", {0, 1, 255}), ("class", {0, 1, 2})])
def test_the_pipeline_on_mock_pets(border, allowed, answering_host):
    with tfds.testing.mock_data(num_examples=FAKE_PETS, as_dataset_fn=fake_pets_examples):
        data = pets.dataset("train", size=32, batch_size=3, border=border)
        images, masks = next(iter(data))
    assert images.shape == (3, 32, 32, 3) and images.dtype == tf.float32
    assert masks.shape == (3, 32, 32) and set(np.unique(masks)) == allowed
    assert pets.class_names(border)[:2] == ("background", "pet")


ARCHIVES = {  # tfds' oxford_iiit_pet checksums, as published with the dataset
    "images.tar.gz": (791_918_971,
                      "67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d"),
    "annotations.tar.gz": (19_173_078,
                           "52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91"),
}


def test_offline_and_unprepared_fails_fast_naming_the_files_to_place(tmp_path, monkeypatch):
    monkeypatch.setattr(pets, "HOST", f"http://127.0.0.1:{closed_port()}/")
    began = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        pets.dataset("train", data_dir=tmp_path)
    assert time.monotonic() - began < 10  # tfds alone retries for about 3.5 minutes
    message = str(error.value)
    assert f"not prepared in {tmp_path}" in message and "Connection refused" in message
    assert f"place them in {tmp_path / 'downloads' / 'manual'}: " in message
    for name, (size, sha) in ARCHIVES.items():
        assert f"{name} ({size:,} bytes, SHA-256 {sha}) from https://" in message
    assert "data_scripts/pets.py" in message
    assert not (tmp_path / "downloads").exists() or not any((tmp_path / "downloads").iterdir())


def test_a_host_that_never_answers_counts_as_unreachable(monkeypatch):
    monkeypatch.setattr(pets, "PROBE_SECONDS", 0.5)
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        began = time.monotonic()
        reason = pets.unreachable(f"http://127.0.0.1:{silent.getsockname()[1]}/", 0.5)
    assert "timed out" in reason and time.monotonic() - began < 3


def test_archives_placed_by_hand_need_no_host(tmp_path, monkeypatch):
    """With both archives in tfds' manual folder nothing is probed: tfds prepares from them."""
    monkeypatch.setattr(pets, "HOST", f"http://127.0.0.1:{closed_port()}/")
    builder = tfds.builder(pets.TFDS_NAME, data_dir=tmp_path)
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    (manual / "annotations.tar.gz").write_bytes(b"placed by hand")
    assert [info.filename for _, info in pets.missing_archives(builder)] == ["images.tar.gz"]
    with pytest.raises(ConnectionError, match="images.tar.gz") as error:
        pets.ensure_obtainable(builder)
    assert "annotations.tar.gz" not in str(error.value)
    (manual / "images.tar.gz").write_bytes(b"placed by hand")
    assert pets.missing_archives(builder) == []
    pets.ensure_obtainable(builder)  # returns: no network needed


def test_the_probed_host_is_where_tfds_downloads_from():
    urls = tfds.builder_cls(pets.TFDS_NAME).url_infos
    assert {url.rsplit("/", 1)[1] for url in urls} == set(ARCHIVES)
    assert all(url.startswith(pets.HOST) for url in urls)
    assert {info.filename: (int(info.size), info.checksum) for info in urls.values()} == ARCHIVES
