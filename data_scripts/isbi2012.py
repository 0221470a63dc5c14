"""ISBI 2012 EM segmentation stacks (the U-Net paper's data): download, convert to folders.

    python data_scripts/isbi2012.py --volume-url URL --labels-url URL [--sha256-volume H ...]

The challenge's files are served from mirrors that change; give the URLs (and, to verify them,
the SHA-256 sums) of train-volume.tif and train-labels.tif, or --volume/--labels for local copies.
"""

from pathlib import Path

from _common import parser

from segcourse.data.convert import tiff_stack_to_folders
from segcourse.data.download import Remote, download

if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    for part in ("volume", "labels"):
        p.add_argument(f"--{part}", help=f"a local train-{part}.tif")
        p.add_argument(f"--{part}-url")
        p.add_argument(f"--sha256-{part}")
    args = p.parse_args()
    out = Path(args.out)
    paths = {}
    for part in ("volume", "labels"):
        local, url = getattr(args, part), getattr(args, f"{part}_url")
        if not (local or url):
            p.error(f"give --{part} or --{part}-url")
        paths[part] = Path(local) if local else download(
            Remote(url, None, getattr(args, f"sha256_{part}")), out / "downloads")
    converted = tiff_stack_to_folders(paths["volume"], paths["labels"], out / "isbi2012")
    print(f"converted into {converted}")
