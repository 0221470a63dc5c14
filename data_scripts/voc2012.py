"""PASCAL VOC 2012 (train/val): download (resumable, checksummed) and unpack.

    python data_scripts/voc2012.py --out data
    segcourse train fcn8s --dataset folder:data/VOCdevkit/VOC2012

The unpacked tree is read as it is: JPEGImages/, SegmentationClass/ (palette PNGs, 255 =
ignore), ImageSets/Segmentation/{train,val}.txt.
"""

from pathlib import Path

from _common import parser

from segcourse.data.download import Remote, download, extract
from segcourse.data.folders import voc_split

TRAINVAL = Remote("http://pjreddie.com/media/files/VOCtrainval_11-May-2012.tar", 1_999_639_040,
                  "e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb")

if __name__ == "__main__":
    args = parser(__doc__.split("\n")[0]).parse_args()
    out = Path(args.out)
    extract(download(TRAINVAL, out / "downloads"), out)
    root = out / "VOCdevkit" / "VOC2012"
    for split in ("train", "val"):
        print(f"{split}: {len(voc_split(root, split).images)} images in {root}")
