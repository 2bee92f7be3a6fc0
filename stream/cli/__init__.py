"""The ``stylize`` command: one module per subcommand, registered here, over a library that parses nothing.

Each command module has ``NAME``, ``HELP``, ``DESCRIPTION``, ``EXAMPLES``, ``add_arguments(parser)`` and
``run(args) -> exit code``. Every problem the user can fix is one line on stderr and exit code 1; a
traceback is shown only with ``--debug``. SIGTERM and SIGHUP stop a command as Ctrl-C does (exit codes
143, 129, 130: see :mod:`stream.interrupt`). ``-v`` shows what is loaded and where it runs, and the
chatter of OpenCV and FFmpeg; ``-q`` shows errors only and no progress bars.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib import metadata

from engines.errors import StylizeError
from stream import interrupt
from stream.cli import bench, convert, engines, eval, export, image, live, serve, train

COMMANDS = {m.NAME: m for m in (image, convert, live, serve, eval, export, engines, bench, train)}

EXIT_ERROR = 1

EXAMPLES = """examples:
  stylize image photo.jpg -o out.png --style starry.jpg
  stylize convert in.mp4 out.mp4 --style la_muse.jpg --device cuda
  stylize live --style a.jpg,b.jpg
  stylize serve --style a.jpg b.jpg     (then open http://127.0.0.1:8080/)
  stylize eval in.mp4 out.mp4 --style la_muse.jpg
  stylize train --content coco/ --style wikiart/ --out my-decoder/
  stylize COMMAND --help     (options and examples of one command)"""


def version() -> str:
    try:
        return metadata.version("adain-stream")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """argparse, plus one clear line when a ``--style`` list swallowed the positional arguments.

    ``--style`` takes several values, so in ``--style a.jpg in.mp4 out.mp4`` it takes all three and
    argparse then only says that the input and output are required.
    """

    def parse_known_args(self, args=None, namespace=None):
        self._arg_strings = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        missing = message.removeprefix("the following arguments are required: ")
        positionals = [m for m in missing.split(", ") if not m.startswith("-")] if missing != message else []
        took = _style_values(getattr(self, "_arg_strings", []))
        if positionals and len(took) > 1:
            self.exit(
                2,
                f"{self.prog}: error: --style took {' '.join(took)}, leaving no {' and '.join(positionals)}; "
                "put --style after them, or end its list with --\n",
            )
        super().error(message)


def _style_values(arg_strings: list[str]) -> list[str]:
    """The values the last ``--style`` took: the arguments after it up to the next option or ``--``."""
    if "--style" not in arg_strings:
        return []
    start = len(arg_strings) - arg_strings[::-1].index("--style")
    values = []
    for a in arg_strings[start:]:
        if a.startswith("-") and len(a) > 1:
            break
        values.append(a)
    return values


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("output")
    talk = g.add_mutually_exclusive_group()
    talk.add_argument(
        "-v", "--verbose", action="store_true", help="say what is loaded and where it runs; library chatter"
    )
    talk.add_argument("-q", "--quiet", action="store_true", help="errors only, no progress bars")
    g.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    return common


def _add_command(parser: argparse.ArgumentParser, module) -> None:
    module.add_arguments(parser)
    parser.set_defaults(run=module.run)


def build_parser(prog: str = "stylize", command: str | None = None) -> argparse.ArgumentParser:
    """The whole ``stylize`` parser, or (``command``) one command's parser standing alone as ``prog``."""
    common = _common_options()
    fmt = argparse.RawDescriptionHelpFormatter
    if command is not None:
        module = COMMANDS[command]
        p = _Parser(
            prog=prog, description=module.DESCRIPTION, epilog=module.EXAMPLES, formatter_class=fmt,
            parents=[common],
        )  # fmt: skip
        _add_command(p, module)
        return p
    parser = _Parser(
        prog=prog, description="Real-time arbitrary style transfer (AdaIN) for pictures, videos and webcams.",
        epilog=EXAMPLES, formatter_class=fmt,
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        p = sub.add_parser(
            name, help=module.HELP, description=module.DESCRIPTION, epilog=module.EXAMPLES,
            formatter_class=fmt, parents=[common],
        )  # fmt: skip
        _add_command(p, module)
    return parser


def configure_output(verbose: bool, quiet: bool, prog: str) -> None:
    """Our log lines as ``prog: message``; OpenCV's and FFmpeg's own lines only with ``-v``."""
    import cv2
    from av import logging as av_logging

    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    cv2.utils.logging.setLogLevel(
        cv2.utils.logging.LOG_LEVEL_WARNING if verbose else cv2.utils.logging.LOG_LEVEL_SILENT
    )
    av_logging.set_level(av_logging.INFO if verbose else None)
    if not verbose:  # SVT-AV1 prints its banner past FFmpeg's log level; it reads this when it starts
        os.environ.setdefault("SVT_LOG", "1")


def main(argv: list[str] | None = None, prog: str = "stylize", command: str | None = None) -> int:
    """Run the command line ``argv``; returns the exit code. ``command`` runs one command as ``prog``."""
    args = build_parser(prog, command).parse_args(argv)
    label = prog.removesuffix(".py")
    configure_output(args.verbose, args.quiet, label)
    try:
        with interrupt.signals_as_ctrl_c():
            return args.run(args)
    except StylizeError as e:
        print(f"{label}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{label}: {interrupt.reason()}", file=sys.stderr)
        return interrupt.exit_code()
    except Exception as e:
        if args.debug:
            raise
        print(
            f"{label}: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR
