# SPDX-License-Identifier: MIT
"""pymemtrace.trace: the runner behind `pymemtrace-trace`, as a package (standard library only).

    cli       the command line: options, what is traced, the program that traces it
    modes     tracing a command or a running process; stopping; exit status
    bpftrace_binary  the system's bpftrace (fixed root-owned directories, never PATH)
    session   BpftraceSession: one bpftrace program in the background (runner, tests, benchmarks)
    programs  which toolkit script, with which files; scripts: the scripts from shared parts
    targets   the libraries, C library and user of what is traced
    aliases   files named in a program by /proc/<pid>/fd aliases, never by their paths
    procfs    a target's mappings, liveness and semaphores, read from /proc
    elf       the USDT probes (.note.stapsdt) of an ELF file
    reports   summary, leaks and flow reports, text and JSON
    snapshots reports over time (--interval): snapshots, their growth, the peak
    output    the -o report file; names: target names shown safely; errors: Failure
    user_rights  a step run as another user (forked, dropped), descriptors passed back
    path_walk  a path walked so that only links of trusted users are followed (one rule)
    trusted_paths  -o's path walked, links of root and the caller followed
"""
