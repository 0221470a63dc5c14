"""Chair Segments (or any image/mask archive): download, verify, unpack into data/<name>.

    python data_scripts/chair_segments.py --url URL [--sha256 HASH] [--name chair_segments]

The archive must hold images/ and masks/ (pixel value = class) at its top or one folder down;
`segcourse train unet --dataset folder:data/chair_segments` then reads it.
"""

from pathlib import Path

from _common import parser

from segcourse.data.download import Remote, download, extract
from segcourse.data.folders import find_split

if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--sha256")
    p.add_argument("--name", default="chair_segments")
    args = p.parse_args()
    out = Path(args.out)
    target = extract(download(Remote(args.url, None, args.sha256), out / "downloads"),
                     out / args.name)
    roots = [target, *[d for d in target.iterdir() if d.is_dir()]]
    for root in roots:
        if (root / "images").is_dir() or (root / "train").is_dir():
            print(f"{len(find_split(root, 'train').images)} training images in {root}")
            break
    else:
        raise SystemExit(f"{target} holds no images/ and masks/ folders")
