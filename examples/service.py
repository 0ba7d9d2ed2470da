#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A small service for the README's "Services" section: a pool of worker processes serving
requests, each worker with a bounded cache (it plateaus) and a leak (one block a request that
is never released). Trace it with

    sudo pymemtrace-trace --report leaks --per-process -- python3 examples/service.py
    sudo pymemtrace-trace --report leaks --interval 1 -- python3 examples/service.py --workers 0

Allocations go through cMemLeak's C heap blocks, so they fire pymemtrace's probes.
"""
import argparse
import multiprocessing
import time

from pymemtrace import cMemLeak

CACHE_SIZE = 8  # entries a worker keeps
cache = []
leaked = []


def serve(request):
    """One request: a cached 4 KiB buffer (the oldest dropped past CACHE_SIZE), and 1 KiB that is
    kept forever by mistake."""
    cache.append(cMemLeak.CMalloc(4096))  # the cache: bounded
    del cache[:-CACHE_SIZE]
    leaked.append(cMemLeak.CMalloc(1024))  # the leak: one block a request
    return request


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes (0: serve in this process)")
    parser.add_argument("--requests", type=int, default=40, help="requests in all")
    parser.add_argument("--seconds", type=float, default=4.0, help="how long the requests take")
    args = parser.parse_args()
    pause = args.seconds / max(args.requests, 1)
    if args.workers == 0:
        for request in range(args.requests):
            serve(request)
            time.sleep(pause)
        return
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        for request in range(args.requests):
            pool.apply_async(serve, (request,))
            time.sleep(pause)
        pool.close()
        pool.join()


if __name__ == "__main__":
    main()
