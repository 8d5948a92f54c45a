"""The benchmark's cold measurements evict the page cache where they say they do."""

import os
import tempfile
from pathlib import Path

from benchmarks import measure

ROOT = Path(__file__).resolve().parents[2]


def _cached_file(folder: str, name: str = "blob.bin") -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(os.urandom(8 << 20))
        f.flush()
        os.fsync(f.fileno())  # clean pages: posix_fadvise cannot drop dirty ones
    with open(path, "rb") as f:
        f.read()
    return path


def test_run_isolated_evicts_in_the_child_right_before_the_window():
    """With ``evict_files`` the measured call finds the file out of the page cache (and the
    child reports how); without, the same call finds it cached: the eviction is the
    child's, after its start-up, as in cold_read."""
    # on the repository's disk: /tmp may be a tmpfs, whose pages cannot be evicted
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as folder:
        path = _cached_file(folder)
        kept = measure.run_isolated("benchmarks.measure:cached_fraction", [path],
                                    return_result=True, quiet=True)
        assert kept["ok"], kept
        assert kept["result"] > 0.9
        assert "evict_method" not in kept

        cold = measure.run_isolated("benchmarks.measure:cached_fraction", [path],
                                    return_result=True, quiet=True, evict_files=(path,))
        assert cold["ok"], cold
        assert cold["evict_method"] == "posix_fadvise_dontneed"  # the files only
        assert cold["resident_fraction_after_evict"] < 0.1
        assert cold["result"] < 0.1


def test_file_scoped_eviction_leaves_other_files_cached():
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as folder:
        a, b = _cached_file(folder, "a.bin"), _cached_file(folder, "b.bin")
        assert measure.evict_page_cache([a], "files") == "posix_fadvise_dontneed"
        assert measure.cached_fraction([a]) < 0.1
        assert measure.cached_fraction([b]) > 0.9
