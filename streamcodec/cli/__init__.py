"""The ``streamcodec`` command line: one module per subcommand, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import ModelNotFoundError, StreamError
from . import batch, bench, benchrc, decode, desync, encode, eval, export, fuzz, info, soak, train

COMMANDS = (encode, decode, info, train, export, eval, bench, desync, benchrc, soak, batch, fuzz)


def build_parser() -> argparse.ArgumentParser:
    """The ``streamcodec`` argument parser, with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="streamcodec", description="Neural video compression (EVC).")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status. Stream errors print one line, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # the reader of our stdout went away (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a missing or unreadable input, a directory for a file, a full disk ...
        print(f"streamcodec {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except (StreamError, ModelNotFoundError, ValueError) as exc:
        print(f"streamcodec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"streamcodec {args.command}: interrupted", file=sys.stderr)
        return 130


def describe_os_error(exc: OSError) -> str:
    """``strerror: filename`` (``No space left on device: out.scv``), or the error's own text."""
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)
