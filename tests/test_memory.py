"""pad.memory: large freed tensors are reused instead of faulted in again (glibc), for small catalogues only."""
import platform
import subprocess
import sys
import textwrap

import pytest

from pad.memory import KEEP_HEAP_MAX_ITEMS

# In a fresh interpreter (the allocator's settings last for the process): apply for a catalogue of N items, then
# count the minor page faults of 32 allocate-touch-free rounds of a 64 MB tensor (above glibc's mmap cap). A kept
# heap settles within a dozen rounds or so (runs differ: up to 5 of 32 measured rounds still faulted in).
FAULTS = textwrap.dedent("""
    import resource, sys, torch
    from pad.memory import reuse_freed_memory
    applied = reuse_freed_memory(int(sys.argv[1]))
    for _ in range(8):  # warm: the heap grows to its steady size first
        torch.empty(16 * 2**20).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(32):
        torch.empty(16 * 2**20).fill_(1.0)
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(n_items: int) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", FAULTS, str(n_items)],
                         capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_small_catalogues_reuse_freed_big_tensors_large_ones_give_them_back():
    import resource

    pages = 32 * 64 * 2**20 // resource.getpagesize()  # what fresh mmaps fault in
    applied, faults = _faults(KEEP_HEAP_MAX_ITEMS)
    assert applied == "True" and faults < pages // 4  # kept in the heap: a few rounds at most fault in
    applied, faults = _faults(KEEP_HEAP_MAX_ITEMS + 1)
    assert applied == "False" and faults > pages // 2  # glibc's default: mmap and unmap every time


def test_training_and_evaluation_stages_apply_it_with_their_catalogue():
    from pathlib import Path

    for stage in ("pretrain", "align", "finetune", "evaluate", "baselines"):
        source = (Path(__file__).parents[1] / "stages" / f"{stage}.py").read_text()
        assert "reuse_freed_memory(" in source, stage


# kept_heap in a fresh interpreter with a large catalogue (no process-wide kept heap): the minor faults of 32
# rounds inside the block (after 8 warm ones and a nested block) and the RSS just after the block.
SCOPED = textwrap.dedent("""
    import resource, torch
    from pad.memory import kept_heap, reuse_freed_memory

    def faults(rounds):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            torch.empty(16 * 2**20).fill_(1.0)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // 2**20

    reuse_freed_memory(10**6)  # a large catalogue: not applied
    with kept_heap() as applied:
        faults(8)  # warm: the heap grows to its steady size first
        with kept_heap() as nested:  # e.g. a gate fit's ranking: the enclosing block keeps the heap
            pass
        inside = faults(32)
    print(applied and nested, inside, rss_mb())
""")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_kept_heap_keeps_freed_blocks_inside_the_block_only_and_gives_them_back():
    import resource

    pages = 32 * 64 * 2**20 // resource.getpagesize()
    out = subprocess.run([sys.executable, "-c", SCOPED], capture_output=True, text=True, check=True)
    applied, inside, rss_mb = out.stdout.split()
    assert applied == "True" and int(inside) < pages // 4  # reused: a few rounds at most fault their 64 MB in
    baseline = subprocess.run([sys.executable, "-c", "import torch, resource; print(int(open('/proc/self/statm')"
                               ".read().split()[1]) * resource.getpagesize() // 2**20)"],
                              capture_output=True, text=True, check=True)
    assert int(rss_mb) < int(baseline.stdout) + 32  # the freed 64 MB went back to the system (malloc_trim)
