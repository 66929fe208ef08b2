#!/usr/bin/env python3
"""CPU breakdown of one sandboxd operation from a perf profile.

Reads `perf script -F comm,ip,sym,dso` output on stdin (a profile recorded with
`perf record -g --call-graph dwarf -p <sandboxd pid>` while one kind of request
was sent), and attributes every sample to one part of the call, by the deepest
frame of its stack that names a part: the kernel's TCP work under the runtime
request counts as the runtime request, the JSON parsing inside the plugin as
the plugin's logic, and so on. Prints a markdown table of shares.

    perf script -i get.data -F comm,ip,sym,dso | scripts/cpu-breakdown.py
"""

import re
import sys
from collections import Counter

# (part, pattern on a frame "symbol (dso)"), most specific first; the deepest
# matching frame of a stack decides.
PARTS = [
    ("runtime request (reqwest, hyper client, its TCP)",
     r"reqwest::|hyper_util::client|hyper::client|sandboxd::imports::http|egress::"),
    ("storage (redb)", r"redb::|sandboxd::storage::|sandboxd::imports::storage"),
    ("store and instance (create, instantiate, drop)",
     r"instantiate_async|InstanceAllocator|Instance::new|StoreOpaque|StoreInner|Store<.*>::new|pagemap"),
    ("lifting and lowering across the boundary",
     r"wasmtime::runtime::component::func|typecheck|component-trampolines|wasm-call-component|sandboxd::bindings::.*(lift|lower)"),
    # Compiled wasm, named through the perf map (SANDBOXD_WASM_PERFMAP=1).
    ("plugin logic (wasm)", r"/tmp/perf-\d+\.map|\[JIT\]"),
    ("JSON (host side)", r"serde_json::|serde::"),
    ("auth", r"sandboxd::auth|sandboxd::api::caller"),
    ("HTTP server (hyper, axum, tower, routes)",
     r"hyper::proto|hyper::server|axum::|tower::|tower_http::|sandboxd::api::"),
    ("scheduling and wake-ups (tokio, futex, epoll)",
     r"tokio::runtime|futex|epoll|schedule|finish_task_switch|park"),
]
COMPILED = [(name, re.compile(p)) for name, p in PARTS]


def classify(frames):
    # frames: leaf first. The deepest (leaf-most) frame that names a part wins,
    # except that frames outside sandboxd's own threads are ignored.
    for frame in frames:
        for name, pattern in COMPILED:
            if pattern.search(frame):
                return name
    return "other (allocator, libc, unattributed)"


def samples(lines):
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif not line.startswith((" ", "\t")):
            comm = line.split()[0]
            frames = []
        else:
            parts = line.strip().split(" ", 1)
            frames.append(parts[1] if len(parts) > 1 else parts[0])
    if comm is not None:
        yield comm, frames


def main():
    counts = Counter()
    total = 0
    for comm, frames in samples(sys.stdin):
        # The epoch ticker only sleeps; count the threads that serve.
        if comm.startswith("sandboxd-epoch"):
            continue
        counts[classify(frames)] += 1
        total += 1
    print("| part of the call | share of sandboxd's CPU samples |")
    print("|---|---:|")
    order = [name for name, _ in PARTS] + ["other (allocator, libc, unattributed)"]
    for name in order:
        if counts[name]:
            print(f"| {name} | {100.0 * counts[name] / total:.1f}% |")
    print(f"| (samples) | {total} |")


if __name__ == "__main__":
    main()
