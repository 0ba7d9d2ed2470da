# SPDX-License-Identifier: MIT
"""What a run was asked to do: one typed, read-only description that the command line makes
(cli.parse_args, which also checks it) and the runner, the engines and the reporters read.
argparse's namespace stops at the command line: nothing after it can add to or change a request,
and a field that is not here cannot be read by mistake (getattr with a default hid typos)."""
import dataclasses
import sys
from dataclasses import dataclass
from typing import Optional, TextIO, Tuple


@dataclass(frozen=True)
class Request:
    # What to trace.
    pid: Optional[int]             # -p PID; None: a COMMAND or --all
    command: Tuple[str, ...]       # -- COMMAND [ARG...]; () with -p or --all
    all: bool                      # every process that maps the --lib libraries
    lib: Tuple[str, ...]           # --lib PATH or DIR, as given
    follow: bool                   # the processes a traced one forks too
    user: Optional[str]            # --user: whom a COMMAND runs as
    engine: str                    # auto, libbpf or bpftrace
    attach_by: Optional[str]       # path or pid: how the engine attaches named libraries; None:
                                   # path for a COMMAND, pid for -p (engine_trace.attached_by_path)
    # Where locations come from.
    frames: str                    # probes (py*) or python-probes (CPython's)
    libc: bool
    object_allocator: bool
    python_call_stack: bool
    depth: int                     # innermost Python frames a location holds, 1 to 16
    native: bool                   # the C caller beside the Python frames
    # What the report is.
    report: str                    # flow, summary or leaks
    format: str                    # text, json, folded or html
    top: int                       # the text report's first N locations; 0: all
    histograms: bool
    full_file_path: bool
    per_process: bool
    interval: Optional[float]      # seconds between --interval snapshots
    allow_loss: bool
    # Limits of the tracer.
    strlen: int
    max_entries: int
    perf_pages: int
    keep_program: bool
    # Where it goes: -o FILE as given; `out` is the stream the run writes (the file, or stdout)
    # and `scripts` the flame graph page's scripts (html), both settled before tracing starts.
    output: Optional[str]
    out: TextIO = sys.stdout
    scripts: Optional[str] = None

    @property
    def json(self):
        return self.format == "json"

    @classmethod
    def from_arguments(cls, namespace):
        """The request a checked argparse namespace describes. Every option must be a field: a
        new option added to the parser without one fails here, at once, in every test."""
        values = vars(namespace)
        values.pop("json", None)  # --json is format json, folded in by cli.report_format
        values["command"] = tuple(values["command"])
        values["lib"] = tuple(values["lib"])
        unknown = set(values) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"options without a Request field: {', '.join(sorted(unknown))}")
        return cls(**values)

    def writing_to(self, out, scripts=None):
        """This request, writing its report to `out` (with the page's `scripts` for html)."""
        return dataclasses.replace(self, out=out, scripts=scripts)
