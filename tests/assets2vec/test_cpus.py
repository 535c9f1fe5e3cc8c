import os
import threading
import time

from assets2vec.catalog.index import FairSlots
from assets2vec.cpus import usable_cores


def test_usable_cores_follows_the_cgroup_quota_and_affinity(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: two can run at once
    assert usable_cores(tmp_path) == min(affinity, 2)
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cores(tmp_path) == affinity
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")  # cgroup v1, one CPU
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cores(tmp_path) == affinity
    assert usable_cores(tmp_path / "missing") == affinity


def test_fair_slots_admit_waiters_in_arrival_order_and_never_more_than_n():
    slots = FairSlots(1)
    order, running, peak = [], [0], [0]
    lock = threading.Lock()

    def worker(i):
        with slots:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                order.append(i)
            time.sleep(0.01)
            with lock:
                running[0] -= 1

    slots.__enter__()  # hold the only slot while the workers queue up one after another
    threads = []
    for i in range(5):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        threads.append(t)
        deadline = time.time() + 5
        while len(slots._waiters) < i + 1 and time.time() < deadline:
            time.sleep(0.001)
    slots.__exit__(None, None, None)
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4] and peak[0] == 1
    assert slots._free == 1 and not slots._waiters


def test_threads_option_sizes_torch_and_rejects_nonsense(tmp_path, monkeypatch, capsys):
    import torch

    from assets2vec.cli.main import main

    before = torch.get_num_threads()
    monkeypatch.delenv("ASSETS2VEC_THREADS", raising=False)
    try:
        assert main(["--threads", "1", "info", str(tmp_path)]) in (0, 2)  # an empty folder is not an artifact
        assert torch.get_num_threads() == 1 and os.environ["ASSETS2VEC_THREADS"] == "1"
        assert main(["--threads", "0", "info", str(tmp_path)]) == 2
        assert "threads must be at least 1" in capsys.readouterr().err
        monkeypatch.setenv("ASSETS2VEC_THREADS", "two")
        assert main(["info", str(tmp_path)]) == 2
        assert "ASSETS2VEC_THREADS='two'" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
        os.environ.pop("ASSETS2VEC_THREADS", None)
