"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) through tensorflow-datasets.

The trimaps label each pixel 1 = pet, 2 = background, 3 = border (the uncertain band around the
animal). Here: 0 = background, 1 = pet, and the border either a class of its own (2,
``border="class"``) or the ignore label (255, ``border="ignore"``, the usual choice: the band
is where the annotators were unsure). tfds downloads and prepares the data once (about 800 MB)
into its data directory; splits: train = the first 90 % of tfds' ``train``, val = the rest,
test = tfds' ``test``.

Offline, tfds would retry its download for minutes before a bare error: when the data is not
prepared and the two archives are not at hand, the download host is tried first, for a few
seconds, and if it does not answer the error says which files to place where by hand.
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

from segcourse.labels import IGNORE_INDEX

TFDS_NAME = "oxford_iiit_pet"
HOST = "https://thor.robots.ox.ac.uk/"  # where tfds fetches images.tar.gz and annotations.tar.gz
PROBE_SECONDS = 5.0  # how long the host may take to answer before pets.dataset gives up
SPLITS = {"train": "train[:90%]", "val": "train[90%:]", "test": "test"}
# tfds' "train" split is the dataset's trainval.txt: 3,680 images ("test": 3,669), as the tfds
# catalog page of oxford_iiit_pet lists them. SPLITS["train"] keeps 90 % of it, 3,312 images
# (tests/data/test_pets.py asks tfds): known without opening the data, for the steps an epoch
# takes.
TRAINVAL_IMAGES = 3680
TRAIN_IMAGES = TRAINVAL_IMAGES * 90 // 100
BORDERS = ("ignore", "class")


def class_names(border="ignore"):
    """The classes of the trimap labels: the border is a third class or ignored."""
    return ("background", "pet") + (("border",) if border == "class" else ())


def trimap_to_labels(trimap, border="ignore"):
    """Trimap values 1, 2, 3 → 1 (pet), 0 (background), 2 or 255 (border)."""
    import tensorflow as tf

    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}; got {border!r}.")
    lookup = tf.constant([IGNORE_INDEX, 1, 0, 2 if border == "class" else IGNORE_INDEX],
                         tf.int32)
    return tf.gather(lookup, tf.cast(trimap, tf.int32))


def dataset(split="train", size=128, batch_size=16, border="ignore", shuffle=None, seed=0,
            data_dir=None, augment=None):
    """A batched pipeline of ``(image float32 [0, 1] (size, size, 3), mask int32)``."""
    import tensorflow as tf

    from segcourse.data.augment import resize_pair

    data = _examples(split, data_dir)
    if shuffle if shuffle is not None else split == "train":  # uint8 here: 4× smaller
        data = data.shuffle(1000, seed=seed, reshuffle_each_iteration=True)
    data = data.map(lambda example: resize_pair(*_pair(example, border), (size, size)),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        data = data.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def pictures_at_own_size(split="test", border="ignore", data_dir=None):
    """The split's ``(image float32 (H, W, 3), mask int32 (H, W))`` pairs one by one, each at
    its own size (an unbatched ``tf.data`` pipeline, whose ``len()`` is the split's size): what
    a score at the pictures' own size is computed on."""
    import tensorflow as tf  # TensorFlow-only: tfds gives tf.data pipelines

    return _examples(split, data_dir).map(lambda example: _pair(example, border),
                                          num_parallel_calls=tf.data.AUTOTUNE)


def _examples(split, data_dir):
    """tfds' examples of ``split``, in order; tfds prepares the data first where it has not
    (or :func:`ensure_obtainable` says which files to place by hand)."""
    import tensorflow_datasets as tfds

    if split not in SPLITS:
        raise ValueError(f"pets has the splits {', '.join(SPLITS)}; got {split!r}.")
    builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
    if not builder.is_prepared():
        ensure_obtainable(builder)
        builder.download_and_prepare()
    return builder.as_dataset(split=SPLITS[split], shuffle_files=False)


def _pair(example, border):
    """An example's ``(image float32 [0, 1], class numbers int32)`` at its own size."""
    import tensorflow as tf  # TensorFlow-only: runs inside tf.data's map

    image = tf.cast(example["image"], tf.float32) / 255.0
    return image, trimap_to_labels(example["segmentation_mask"][..., 0], border)


def _cached(builder, url, sha256) -> bool:
    """Whether tfds downloaded ``url`` before (its cache: the file and its ``.INFO``)."""
    try:
        from tensorflow_datasets.core.download.resource import get_dl_fname
    except ImportError:  # another tfds layout: then only the manual folder counts
        return False
    name = get_dl_fname(url, sha256)
    downloads = Path(builder.data_dir_root) / "downloads"
    return any((folder / name).exists() and (folder / f"{name}.INFO").exists()
               for folder in (downloads / builder.name, downloads))


def missing_archives(builder):
    """The archives tfds would have to download: ``[(url, UrlInfo)]``; none in its manual folder
    (``<data_dir>/downloads/manual/<file name>``) or download cache counts as at hand."""
    manual = Path(builder.data_dir_root) / "downloads" / "manual"
    return [(url, info) for url, info in sorted((type(builder).url_infos or {}).items())
            if not (manual / info.filename).exists()
            and not _cached(builder, url, info.checksum)]


def unreachable(url, seconds):
    """``None`` when ``url`` answers (any HTTP status) within about ``seconds``, else why not.
    The attempt runs in a thread so that a slow name lookup cannot hold it up for longer."""
    outcome = []

    def probe():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                   timeout=seconds).close()
            outcome.append(None)
        except urllib.error.HTTPError:  # an answer, though not a happy one: the host is there
            outcome.append(None)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = str(getattr(error, "reason", error))
            errno = re.search(r"\[Errno -?\d+\] [^'\")]+", reason)
            outcome.append(errno.group(0) if errno else reason or type(error).__name__)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(seconds + 1)
    return outcome[0] if outcome else f"no answer within {seconds:g} s"


def ensure_obtainable(builder) -> None:
    """Raise ``ConnectionError`` at once when tfds would have to download an archive and the
    download host does not answer within ``PROBE_SECONDS``; otherwise return."""
    missing = missing_archives(builder)
    if not missing or (reason := unreachable(HOST, PROBE_SECONDS)) is None:
        return
    manual = Path(builder.data_dir_root) / "downloads" / "manual"
    files = "; ".join(f"{info.filename} ({int(info.size):,} bytes, SHA-256 {info.checksum}) "
                      f"from {url}" for url, info in missing)
    raise ConnectionError(
        f"Oxford-IIIT Pet is not prepared in {builder.data_dir_root} and its download host "
        f"{HOST} cannot be reached ({reason}), so tensorflow-datasets cannot download it. "
        f"Connect to the internet and run again, or fetch these files another way and place "
        f"them in {manual}: {files}; tensorflow-datasets then prepares the data from them "
        f"offline. (The same archives placed in data/downloads/ also work with `python "
        f"data_scripts/pets.py --out data` and then `--dataset folder:data/pets`.)")
