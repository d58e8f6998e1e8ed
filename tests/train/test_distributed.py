"""Threads: the cores this process may use, shared among the ranks of a machine; explicit overrides win."""
import os

import pytest

from pad.errors import PadError
from pad.train.distributed import thread_count


def test_affinity_shared_among_local_ranks():
    cores = len(os.sched_getaffinity(0))
    assert thread_count({}) == cores
    assert thread_count({"LOCAL_WORLD_SIZE": "2"}) == max(1, cores // 2)
    assert thread_count({"LOCAL_WORLD_SIZE": str(cores * 4)}) == 1


def test_explicit_overrides():
    assert thread_count({"OMP_NUM_THREADS": "3", "LOCAL_WORLD_SIZE": "2"}) == 3
    assert thread_count({"PAD_THREADS": "5", "OMP_NUM_THREADS": "3"}) == 5
    with pytest.raises(PadError, match="PAD_THREADS"):
        thread_count({"PAD_THREADS": "0"})
    with pytest.raises(PadError, match="OMP_NUM_THREADS"):
        thread_count({"OMP_NUM_THREADS": "two"})
