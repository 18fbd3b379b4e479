"""``hummingbird label``: its options and its command, a thin layer over :class:`hummingbird.app.session.Labeller`
and :func:`hummingbird.app.server.serve` (a local web app to paint masks and watch the other images segment)."""

from __future__ import annotations

import argparse

from hummingbird.catalog import PRESET_NAMES
from hummingbird.cli.argtypes import non_negative_int, positive_int
from hummingbird.models.precision import PRECISIONS


def add_label_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="local web app: paint a few masks, watch the other images segment",
                       description="Serve a page to label the images of PHOTOS_DIR in context: paint an image, its "
                                   "annotation updates the memory and every other image is predicted from it. "
                                   "Prints one URL (http://127.0.0.1:PORT/?token=...) once ready; opens nothing. "
                                   "Annotations are saved on every stroke in PHOTOS_DIR/.hummingbird/ (or --state).")
    p.add_argument("photos", metavar="PHOTOS_DIR", help="folder of the images to label (the images directly inside)")
    p.add_argument("--classes", default=None, metavar="FILE",
                   help="class names, one per line (line i is class i); the page can rename and add classes")
    p.add_argument("--annotations", default=None, metavar="FILE.json",
                   help="COCO JSON (polygons or RLE) whose masks become the starting annotations of the images "
                        "that have none yet; its categories are the classes when --classes is not given")
    p.add_argument("--state", default=None, metavar="DIR", help="state folder (default: PHOTOS_DIR/.hummingbird)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but 127.0.0.1 (e.g. 0.0.0.0) exposes the page to the network "
                        "and prints a warning")
    p.add_argument("--port", type=non_negative_int, default=0, help="port (0: a free one)")
    p.add_argument("--token", default=None, help="access token every request must carry (default: a random one)")
    g = p.add_argument_group("backbone")
    g.add_argument("--backbone", default=None, help=f"preset ({', '.join(PRESET_NAMES)}) or timm:<model name>")
    g.add_argument("--weights", default=None, help="local checkpoint (see build-memory --help)")
    g.add_argument("--input-size", type=positive_int, default=None,
                   help="square input side in pixels (default: the backbone's, 504 for /14 backbones; 448 is a "
                        "good interactive size)")
    g.add_argument("--precision", choices=PRECISIONS, default="auto", help="backbone arithmetic (see build-memory)")
    g.add_argument("--device", default="auto", help="cpu, cuda, ... (auto: cuda if available)")
    g.add_argument("--k", type=positive_int, default=30, help="neighbours per patch of the decoder")
    g.add_argument("--no-progress", action="store_true", help="hide notes on stderr")


def cmd_label(args) -> int:
    from hummingbird.app.server import serve
    from hummingbird.app.session import Labeller
    from hummingbird.app.state import read_class_file

    names = read_class_file(args.classes) if args.classes else None
    labeller = Labeller(args.photos, names, state_dir=args.state, annotations=args.annotations,
                        backbone=args.backbone, weights=args.weights, input_size=args.input_size,
                        precision=args.precision, device=args.device, k=args.k, verbose=not args.no_progress)
    serve(labeller, host=args.host, port=args.port, token=args.token)
    return 0
