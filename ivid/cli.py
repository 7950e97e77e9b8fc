"""The one wrapper every command-line tool runs in: errors become one line, never a traceback.

Usage at the bottom of a CLI script::

    if __name__ == "__main__":
        run_cli(main, parse_args)

:func:`run_cli` parses the arguments, runs ``main`` and turns what escapes into an exit status:

- an :class:`~ivid.errors.IvidError` (bad option, unusable file, busy run folder, ...) prints
  ``error: <message>`` as ONE line on stderr and exits 1;
- ``OSError`` (disk full, permission denied, ...) and ``MemoryError`` likewise, with the
  file when the error names one;
- anything else is an internal error: one line with its type and message and a pointer to
  ``--debug``;
- Ctrl-C exits 130 with ``interrupted``.

``--debug`` on the command line (every CLI accepts it, see :func:`add_debug_option`) or the
environment variable ``IVID_DEBUG=1`` shows the full traceback instead. Python warnings are
printed as ``warning: <message>`` lines (no source line) unless debugging.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any, Callable, Mapping, NoReturn, Optional, Sequence, Type

from .errors import IvidError, one_line, unwrap_worker_error, worker_error_origin

__all__ = ["DEBUG_ENV", "add_debug_option", "debug_requested", "format_error", "help_with_defaults", "run_cli"]

#: environment variable that asks for full tracebacks (``1``, ``true``, ``yes``)
DEBUG_ENV = "IVID_DEBUG"
#: exit status of a reported error / of Ctrl-C
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def add_debug_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--debug`` (full tracebacks on errors) to ``parser``; returns the parser."""
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (or set {DEBUG_ENV}=1)")
    return parser


def help_with_defaults(defaults: Mapping[str, Any]) -> Type[argparse.HelpFormatter]:
    """A help formatter showing every option's default, where an option left at None shows ``defaults[dest]``.

    For CLIs whose options stay None unless given, so that the library resolves them (e.g. against
    a ``--preset``): ``--help`` still shows the value an option not given resolves to.
    """
    class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
        def _get_help_string(self, action: argparse.Action) -> str:
            shown = defaults.get(action.dest) if action.default is None else None
            if shown is None or "%(default)" in (action.help or ""):
                return super()._get_help_string(action)
            return f"{action.help or ''} (default: {str(shown).replace('%', '%%')})"

    return _Formatter


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """True when ``--debug`` is in ``argv`` (default ``sys.argv[1:]``) or ``IVID_DEBUG`` is set to a true value."""
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return "--debug" in argv or env in ("1", "true", "yes", "on")


def format_error(err: BaseException) -> str:
    """The one-line message for ``err`` (without the ``error:`` prefix)."""
    err = unwrap_worker_error(err)
    if isinstance(err, IvidError):
        return one_line(str(err))
    if isinstance(err, MemoryError):
        return ("out of memory" + (f" ({one_line(str(err))})" if str(err) else "")
                + "; lower --batchsize / batch sizes, the number of samples or the image size")
    if isinstance(err, OSError):
        what = f"{err.filename}: " if getattr(err, "filename", None) else ""
        reason = err.strerror or one_line(str(err)) or type(err).__name__
        return one_line(f"{what}{reason}")
    origin = worker_error_origin(str(err)) if "Traceback (most recent call last)" in str(err) else None
    name, message = (origin[0].__name__, origin[1]) if origin else (type(err).__name__, str(err))
    return one_line(f"internal error ({name}: {message})") + \
        f"; rerun with --debug (or {DEBUG_ENV}=1) for the traceback and please report it"


def _short_warning(message, category, filename, lineno, file=None, line=None) -> None:
    stream = sys.stderr if file is None else file
    try:
        stream.write(f"warning: {one_line(str(message))}\n")
    except (OSError, ValueError):  # closed stream at exit
        pass


def run_cli(main: Callable[[Any], Any], parse_args: Optional[Callable[[Optional[Sequence[str]]], Any]] = None,
            argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Run ``main(parse_args(argv))`` and exit: 0 on success (or ``main``'s int result), else see the module doc.

    Args:
        main: the CLI's main function; an ``int`` result is the exit status.
        parse_args: builds ``main``'s argument from ``argv``; ``None`` calls ``main(argv)``.
        argv: arguments (default ``sys.argv[1:]``).
    """
    debug = debug_requested(argv)
    if not debug:
        warnings.showwarning = _short_warning
    try:
        args = parse_args(argv) if parse_args is not None else argv
        result = main(args)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except BaseException as err:  # noqa: B902 - every error ends here
        if debug:
            raise
        sys.stdout.flush()
        print(f"error: {format_error(err)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_ERROR)
    sys.stdout.flush()
    sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)
