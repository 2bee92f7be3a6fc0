"""``stylize image``: stylize pictures, one file or whole folders."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from engines.errors import StylizeError
from stream.cli.options import (
    add_model_arguments,
    add_size_arguments,
    build_stylizer,
    check_model_arguments,
    refuse_existing,
)

NAME = "image"
HELP = "stylize pictures"
DESCRIPTION = (
    "Stylize pictures (files or folders). Several styles are mixed, equally or with --style-weights."
)
EXAMPLES = """examples:
  stylize image photo.jpg -o out.png --style starry.jpg
  stylize image photos/ -o stylized/ --style a.jpg b.jpg --style-weights 2 1 --preserve-color
  stylize image photo.jpg -o out.jpg --style la_muse.jpg --alpha 0.6 --max-side 1024"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", nargs="+", help="content image(s) or folder(s)")
    p.add_argument("-o", "--output", required=True, help="output file (one content image) or folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_model_arguments(p)
    add_size_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engines.stylizer import target_size
    from stream.images import WRITE_SUFFIXES, list_images, read_image, write_image

    check_model_arguments(args)
    contents = [p for c in args.content for p in list_images(c)]
    out = Path(args.output)
    # A name with a suffix is a file (e.g. out.gif must not quietly become a folder); a folder whose
    # name has a dot is an existing one, or written with a trailing slash.
    as_folder = out.is_dir() or args.output.endswith(("/", os.sep)) or not out.suffix
    if not as_folder:
        if out.suffix.lower() not in WRITE_SUFFIXES:
            kinds = ", ".join(sorted(WRITE_SUFFIXES))
            raise StylizeError(
                f"-o {out}: cannot write '{out.suffix}' images; use one of {kinds} "
                f"(or, for a folder, end its name with /)"
            )
        if len(contents) > 1:
            raise StylizeError(f"{len(contents)} content images need an output folder, not the file {out}")
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise StylizeError(f"-o {out} is a file without an image suffix; name a .png file or a folder")
        targets = [out / f"{p.stem}_stylized.png" for p in contents]
    for src, dst in zip(contents, targets, strict=True):
        if dst.resolve() == src.resolve():
            raise StylizeError(f"output {dst} is the input file; choose another output name")
        refuse_existing(dst, args.overwrite)
    stylizer, _, _ = build_stylizer(args)
    if as_folder:
        out.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(contents, targets, strict=True):
        image = read_image(src)
        stylizer.size = target_size(*image.shape[:2], args.size, args.max_side)
        (result,) = stylizer([image])
        write_image(dst, result, overwrite=args.overwrite)
        print(dst)
    return 0
