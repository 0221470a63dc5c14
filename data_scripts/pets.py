"""Oxford-IIIT Pet: download (resumable, checksummed), unpack, convert to image/mask folders.

    python data_scripts/pets.py --out data
    segcourse train unet --dataset folder:data/pets

(``segcourse train --dataset pets`` uses tensorflow-datasets instead, which downloads by itself.)
Without a connection, place images.tar.gz and annotations.tar.gz in <out>/downloads/ yourself:
they are checked (size, SHA-256) and used as they are.
"""

from pathlib import Path

from _common import parser

from segcourse.data.convert import pets_to_folders
from segcourse.data.download import Remote, download, extract

FILES = (
    Remote("https://thor.robots.ox.ac.uk/~vgg/data/pets/images.tar.gz", 791_918_971,
           "67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d"),
    Remote("https://thor.robots.ox.ac.uk/~vgg/data/pets/annotations.tar.gz", 19_173_078,
           "52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91"),
)

if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--border", choices=("ignore", "class"), default="ignore")
    args = p.parse_args()
    out = Path(args.out)
    raw = out / "downloads"
    for remote in FILES:
        extract(download(remote, raw), raw / "pets")
    print(f"converted into {pets_to_folders(raw / 'pets', out / 'pets', args.border)}")
