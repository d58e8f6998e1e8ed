"""pad.memory: large freed tensors are reused instead of faulted in again (glibc)."""
import platform
import resource

import pytest
import torch

from pad.memory import reuse_freed_memory


def _faults_of_big_allocations(cycles: int = 8) -> int:
    """Minor page faults of `cycles` allocate-touch-free rounds of a 64 MB tensor (above glibc's mmap cap)."""
    for _ in range(cycles):  # warm: the heap grows to its steady size first
        torch.empty(16 * 2**20).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        torch.empty(16 * 2**20).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_freed_big_tensors_are_reused_without_page_faults():
    assert reuse_freed_memory()
    pages = 8 * 64 * 2**20 // resource.getpagesize()  # what fresh mmaps would fault in
    assert _faults_of_big_allocations() < pages // 20


def test_stage_entry_points_apply_it(monkeypatch):
    import pad.errors

    calls = []
    monkeypatch.setattr(pad.errors, "reuse_freed_memory", lambda: calls.append(1) or True)
    pad.errors.friendly_errors(lambda: None)()
    assert calls == [1]
