# SPDX-License-Identifier: MIT
"""What an installed runner tells its users about the install it belongs to: where pkg-config
finds pymemtrace's .pc files, which a custom --prefix leaves off pkg-config's own path."""
import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def pkg_config_hint():
    """One paragraph for --help naming the .pc directory of this install; None when run from
    the source tree or a wheel (no .pc files installed)."""
    try:
        from . import installed_paths
    except ImportError:
        return None
    directory = os.path.normpath(os.path.join(HERE, installed_paths.PKGCONFIG_FROM_PACKAGE))
    return ("Building extensions against this install (pymemtrace-redirect --cflags --libs for "
            f"an unmodified extension):\n  PKG_CONFIG_PATH={directory} pkg-config --cflags "
            "pymemtrace")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that a text of several lines (the hint) keeps its lines: a path
    wrapped at its hyphens could not be copied."""

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)
