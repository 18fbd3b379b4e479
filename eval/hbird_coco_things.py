#!/usr/bin/env python
"""Hummingbird table rows on COCO-Things (COCO 2017 train → val, supercategory classes; see data/README.md).

Memory sizes 1024·10², 1024·10³, 1024·10⁴; input 512 (504 for /14); k=30; τ=0.02. Options are those
of eval/hbird_table.py (run with --help); results land in --out-dir as JSON per row.
"""

import sys

from hbird_table import main

if __name__ == "__main__":
    sys.exit(main(dataset="coco_things"))
