"""The local executor with real processes: pinning, logs, walltime, terminate, exits, adoption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpupool.service.executors import (
    AllocationExited,
    AllocationFailed,
    AllocationStarted,
    Executor,
    ExecutorEvent,
    GpuDevice,
    GpuSample,
    Launch,
    LocalExecutor,
    LocalMachine,
    log_paths,
    simulated_fleet_machine,
    simulated_machine,
)
from gpupool.service.executors.sandbox import job_python
from tests.builders import fleet as build_fleet

PY = job_python()  # jobs run as unprivileged accounts (ADR 0005)
NODE = "box"


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[LocalExecutor]:
    ex = LocalExecutor(
        tmp_path / "state", machine=simulated_machine(4, node_name=NODE), walltime_grace_s=0.5, tick_s=0.02
    )
    yield ex
    for aid in ex.allocations():
        ex.terminate(aid, 0)
    ex.close()


def launch(
    tmp_path: Path,
    aid: str,
    code: str,
    ids: tuple[int, ...] = (0,),
    walltime_s: float = 0.0,
    env: dict[str, str] | None = None,
) -> Launch:
    return Launch(
        allocation_id=aid,
        job_id=aid.split("#")[0],
        argv=(PY, "-c", code),
        placement=((NODE, ids),),
        log_dir=tmp_path / "logs",
        env=env or {},
        walltime_s=walltime_s,
    )


def wait_for(
    ex: LocalExecutor, done: Callable[[list[ExecutorEvent]], bool], timeout: float = 10.0
) -> list[ExecutorEvent]:
    got: list[ExecutorEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got.extend(ex.poll())
        if done(got):
            return got
        time.sleep(0.01)
    raise AssertionError(f"timed out; events so far: {got}")


def exited(aid: str) -> Callable[[list[ExecutorEvent]], bool]:
    return lambda evs: any(
        isinstance(e, AllocationExited | AllocationFailed) and e.allocation_id == aid for e in evs
    )


def exit_of(events: list[ExecutorEvent], aid: str) -> AllocationExited:
    (e,) = [e for e in events if isinstance(e, AllocationExited) and e.allocation_id == aid]
    return e


def test_satisfies_the_protocol(executor: LocalExecutor) -> None:
    assert isinstance(executor, Executor)
    assert executor.backend == "local"


def test_runs_a_process_pinned_to_its_devices_with_logs(executor: LocalExecutor, tmp_path: Path) -> None:
    code = (
        "import os, sys; e = os.environ\n"
        "print('cvd=' + e['CUDA_VISIBLE_DEVICES'], e['GPUPOOL_JOB_ID'], e['GPUPOOL_ALLOCATION_ID'],"
        " e['GPUPOOL_GPUS'], e['GPUPOOL_PLACEMENT'], e.get('MY_VAR'), e.get('SECRET_DB'))\n"
        "print('to stderr', file=sys.stderr)"
    )
    os.environ["SECRET_DB"] = "postgres://x"
    try:
        executor.launch(launch(tmp_path, "j1#1", code, ids=(1, 3), env={"MY_VAR": "서울"}))
    finally:
        del os.environ["SECRET_DB"]
    events = wait_for(executor, exited("j1#1"))
    assert isinstance(events[0], AllocationStarted)
    assert exit_of(events, "j1#1").exit_code == 0
    assert exit_of(events, "j1#1").succeeded
    out, err = log_paths(tmp_path / "logs", "j1#1")
    # The server's environment (its database URL) does not leak into jobs; the job's own does.
    assert out.read_text().split() == ["cvd=1,3", "j1", "j1#1", "2", "box:1,3", "서울", "None"]
    assert err.read_text() == "to stderr\n"
    assert executor.allocations() == set()


def test_exit_codes_and_signals_become_events(executor: LocalExecutor, tmp_path: Path) -> None:
    executor.launch(launch(tmp_path, "a#1", "raise SystemExit(3)"))
    executor.launch(
        launch(tmp_path, "b#1", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", ids=(1,))
    )
    events = wait_for(executor, lambda evs: exited("a#1")(evs) and exited("b#1")(evs))
    a, b = exit_of(events, "a#1"), exit_of(events, "b#1")
    assert (a.exit_code, a.signal, a.cause, a.succeeded) == (3, None, "exited", False)
    assert (b.exit_code, b.signal, b.cause) == (None, signal.SIGSEGV, "exited")


def test_walltime_kills_the_group(executor: LocalExecutor, tmp_path: Path) -> None:
    t0 = time.monotonic()
    executor.launch(launch(tmp_path, "w#1", "import time; time.sleep(60)", walltime_s=0.3))
    events = wait_for(executor, exited("w#1"))
    e = exit_of(events, "w#1")
    assert (e.cause, e.signal, e.exit_code) == ("walltime", signal.SIGTERM, None)
    assert 0.3 <= time.monotonic() - t0 < 5


TRAPS = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    "    time.sleep(0.3)  # a clean-up that takes a while\n"
    "    print('cleaned up', flush=True); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)
IGNORES = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def wait_ready(tmp_path: Path, aid: str) -> None:
    out, _ = log_paths(tmp_path / "logs", aid)
    deadline = time.monotonic() + 10
    while "ready" not in (out.read_text() if out.exists() else ""):
        assert time.monotonic() < deadline, "the job never became ready"
        time.sleep(0.01)


def test_terminate_lets_a_job_that_traps_sigterm_exit_cleanly(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    executor.launch(launch(tmp_path, "t#1", TRAPS))
    wait_ready(tmp_path, "t#1")
    executor.terminate("t#1", grace_s=5)
    assert executor.allocations() == {"t#1"}  # terminating, not yet gone
    e = exit_of(wait_for(executor, exited("t#1")), "t#1")
    assert (e.exit_code, e.signal, e.cause) == (0, None, "terminated")
    assert not e.succeeded
    assert log_paths(tmp_path / "logs", "t#1")[0].read_text() == "ready\ncleaned up\n"


def test_terminate_kills_a_job_that_ignores_sigterm_after_the_grace(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    executor.launch(launch(tmp_path, "i#1", IGNORES))
    wait_ready(tmp_path, "i#1")
    t0 = time.monotonic()
    executor.terminate("i#1", grace_s=0.4)
    e = exit_of(wait_for(executor, exited("i#1")), "i#1")
    assert (e.exit_code, e.signal, e.cause) == (None, signal.SIGKILL, "terminated")
    assert time.monotonic() - t0 >= 0.4


@pytest.mark.parametrize("escape", [False, True])
def test_the_whole_process_group_ends_with_the_job(
    executor: LocalExecutor, tmp_path: Path, escape: bool
) -> None:
    # The job sees its own PID namespace, so the test finds the child by a mark in its command
    # line. A child that leaves the group (setsid) dies too: the sandbox's PID 1 ends with the
    # job, and the kernel kills what is left in its PID namespace.
    mark = f"gpupool-child-{os.getpid()}-{escape}"
    code = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)', {mark!r}],"
        f" start_new_session={escape})\n"
        "print(p.pid, flush=True)\n"
    )
    executor.launch(launch(tmp_path, "g#1", code))
    wait_for(executor, exited("g#1"))
    assert int(log_paths(tmp_path / "logs", "g#1")[0].read_text()) < 100  # a pid of its own namespace
    deadline = time.monotonic() + 5
    while _marked(mark):
        assert time.monotonic() < deadline, "the job's child outlived the job"
        time.sleep(0.02)


def _marked(mark: str) -> list[int]:
    """Live processes (host pids) whose command line holds ``mark``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "cmdline").read_bytes() and _alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_launch_is_idempotent_by_allocation_id(executor: LocalExecutor, tmp_path: Path) -> None:
    code = "print('ran', flush=True)"
    executor.launch(launch(tmp_path, "once#1", code))
    executor.launch(launch(tmp_path, "once#1", code))
    events = wait_for(executor, exited("once#1"))
    executor.launch(launch(tmp_path, "once#1", code))  # after it ended too
    time.sleep(0.2)
    events += executor.poll()
    assert [type(e).__name__ for e in events] == ["AllocationStarted", "AllocationExited"]
    assert log_paths(tmp_path / "logs", "once#1")[0].read_text() == "ran\n"


def test_terminate_of_an_unknown_or_finished_allocation_is_a_no_op(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    executor.terminate("nobody#1", 1.0)
    executor.launch(launch(tmp_path, "f#1", "pass"))
    wait_for(executor, exited("f#1"))
    executor.terminate("f#1", 1.0)
    assert executor.poll() == []


def test_allocations_names_what_runs_for_reconcile(executor: LocalExecutor, tmp_path: Path) -> None:
    executor.launch(launch(tmp_path, "r1#1", "import time; time.sleep(60)", ids=(0,)))
    executor.launch(launch(tmp_path, "r2#1", "import time; time.sleep(60)", ids=(1,)))
    executor.launch(launch(tmp_path, "r3#1", "pass", ids=(2,)))
    wait_for(executor, exited("r3#1"))
    assert executor.allocations() == {"r1#1", "r2#1"}
    executor.terminate("r1#1", 0)
    wait_for(executor, exited("r1#1"))
    assert executor.allocations() == {"r2#1"}


def test_a_new_executor_adopts_running_jobs_and_unreported_exits(tmp_path: Path) -> None:
    machine = simulated_machine(4, node_name=NODE)
    first = LocalExecutor(tmp_path / "state", machine=machine, tick_s=0.02)
    first.launch(launch(tmp_path, "long#1", IGNORES, ids=(0,), walltime_s=1.5))
    first.launch(launch(tmp_path, "quick#1", "raise SystemExit(7)", ids=(1,)))
    wait_ready(tmp_path, "long#1")
    deadline = time.monotonic() + 5
    while "quick#1" in first.allocations():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.close()  # the server "crashed": nobody polled quick's exit

    second = LocalExecutor(tmp_path / "state", machine=machine, tick_s=0.02, walltime_grace_s=0.3)
    try:
        assert second.allocations() == {"long#1"}
        second.launch(launch(tmp_path, "long#1", IGNORES))  # reconcile re-dispatch: no second copy
        events = wait_for(second, exited("quick#1"))
        assert exit_of(events, "quick#1").exit_code == 7
        # The adopted job still has its walltime; it ignores SIGTERM, so SIGKILL follows.
        e = exit_of(wait_for(second, exited("long#1")), "long#1")
        assert (e.cause, e.exit_code) == ("walltime", None)  # not our child: status unknown
        assert second.allocations() == set()
        assert second.poll() == []  # the loop polls again once it committed those exits
    finally:
        second.close()
    third = LocalExecutor(tmp_path / "state", machine=machine)
    try:
        assert third.poll() == [] and third.allocations() == set()  # polled exits are not re-reported
    finally:
        third.close()


def test_an_exit_handed_out_but_not_committed_is_reported_again_after_a_crash(tmp_path: Path) -> None:
    # The leader polled an exit and died before the cycle that records it committed: the
    # next executor must report it again, or reconcile would launch the finished job twice.
    machine = simulated_machine(4, node_name=NODE)
    first = LocalExecutor(tmp_path / "state", machine=machine, tick_s=0.02)
    first.launch(launch(tmp_path, "done#1", "raise SystemExit(3)", ids=(0,)))
    assert exit_of(wait_for(first, exited("done#1")), "done#1").exit_code == 3
    first.close()  # killed before its next poll
    second = LocalExecutor(tmp_path / "state", machine=machine, tick_s=0.02)
    try:
        assert exit_of(wait_for(second, exited("done#1")), "done#1").exit_code == 3
        assert second.poll() == []
    finally:
        second.close()
    third = LocalExecutor(tmp_path / "state", machine=machine)
    try:
        assert third.poll() == []  # polled twice: committed, never reported again
    finally:
        third.close()


def test_bad_launches_fail_as_events_not_exceptions(executor: LocalExecutor, tmp_path: Path) -> None:
    base = launch(tmp_path, "x", "pass")
    bad = {
        "nosuch#1": Launch("nosuch#1", "j", ("/no/such/program",), ((NODE, (0,)),), tmp_path),
        "empty#1": Launch("empty#1", "j", (), ((NODE, (0,)),), tmp_path),
        "node#1": Launch("node#1", "j", base.argv, (("elsewhere", (0,)),), tmp_path),
        "ids#1": Launch("ids#1", "j", base.argv, ((NODE, (4,)),), tmp_path),
        "dup#1": Launch("dup#1", "j", base.argv, ((NODE, (1, 1)),), tmp_path),
        "two#1": Launch("two#1", "j", base.argv, ((NODE, (0,)), ("other", (0,))), tmp_path),
        "cwd#1": Launch("cwd#1", "j", base.argv, ((NODE, (0,)),), tmp_path, cwd=tmp_path / "nope"),
    }
    for lc in bad.values():
        executor.launch(lc)
    events = executor.poll()
    reasons = {e.allocation_id: e.reason for e in events if isinstance(e, AllocationFailed)}
    assert set(reasons) == set(bad)
    assert "/no/such/program" in reasons["nosuch#1"]
    assert "'elsewhere' is not this machine" in reasons["node#1"]
    assert "'other' is not this machine" in reasons["two#1"]
    assert executor.allocations() == set()


def test_a_real_machine_refuses_a_multi_node_placement(tmp_path: Path) -> None:
    devs = (GpuDevice(0, "GPU-0", "NVIDIA H200", "H200", 143771),)
    with LocalExecutor(
        tmp_path / "state", machine=LocalMachine(((NODE, devs),)), sampler=RecordingSampler()
    ) as ex:
        ex.launch(Launch("two#1", "two", (PY, "-c", "pass"), ((NODE, (0,)), (NODE + "2", (0,))), tmp_path))
        (event,) = ex.poll()
    assert isinstance(event, AllocationFailed)
    assert "runs on one machine; placement spans nodes box, box2" in event.reason


def test_odd_allocation_ids_stay_inside_the_log_dir(tmp_path: Path) -> None:
    out, err = log_paths(tmp_path, "../../etc/passwd#1")
    assert out.parent == tmp_path and err.parent == tmp_path
    assert "/" not in out.name and not out.name.startswith(".")


def test_a_simulated_machine_stands_in_for_a_whole_fleet(tmp_path: Path) -> None:
    f = build_fleet(racks=1, nodes_per_rack=2, gpus=8)
    a, b = f.nodes[0].name, f.nodes[1].name
    with LocalExecutor(tmp_path / "state", machine=simulated_fleet_machine(f), tick_s=0.02) as ex:
        code = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['GPUPOOL_PLACEMENT'])"
        ex.launch(Launch("gang#1", "gang", (PY, "-c", code), ((a, (6, 7)), (b, (0, 1))), tmp_path))
        ex.launch(Launch("big#1", "big", (PY, "-c", code), ((a, (8,)),), tmp_path))
        events = wait_for(ex, exited("gang#1"))
        events += ex.poll()
    assert exit_of(events, "gang#1").exit_code == 0
    assert log_paths(tmp_path, "gang#1")[0].read_text().split() == ["6,7", f"{a}:6,7;{b}:0,1"]
    assert any(isinstance(e, AllocationFailed) and e.allocation_id == "big#1" for e in events)


def test_a_zero_gpu_placement_hides_every_gpu(executor: LocalExecutor, tmp_path: Path) -> None:
    code = "import os; print(repr(os.environ['CUDA_VISIBLE_DEVICES']))"
    executor.launch(Launch("cpu#1", "cpu", (PY, "-c", code), (), tmp_path))
    wait_for(executor, exited("cpu#1"))
    assert log_paths(tmp_path, "cpu#1")[0].read_text() == "''\n"


class RecordingSampler:
    """Stands in for NVML (absent here): returns a fixed reading and records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.closed = False

    def sample(self, device: GpuDevice, at_ms: int) -> GpuSample | None:
        self.asked.append(device.visible_id)
        return GpuSample(at_ms, device.visible_id, 42, 1000 + device.index)

    def close(self) -> None:
        self.closed = True


def test_telemetry_is_sampled_per_allocation_device(tmp_path: Path) -> None:
    devs = tuple(GpuDevice(i, f"GPU-{i}", "NVIDIA H100 80GB HBM3", "H100", 81559) for i in range(2))
    sampler = RecordingSampler()
    machine = LocalMachine(nodes=((NODE, devs),))
    ex = LocalExecutor(
        tmp_path / "state", machine=machine, sampler=sampler, tick_s=0.02, telemetry_interval_s=0.1
    )
    try:
        ex.launch(
            launch(
                tmp_path,
                "tel#1",
                "import os, time; print(os.environ['CUDA_VISIBLE_DEVICES']); time.sleep(0.5)",
                ids=(1,),
            )
        )
        wait_for(ex, exited("tel#1"))
        samples = ex.telemetry("tel#1")
    finally:
        ex.close()
    assert log_paths(tmp_path / "logs", "tel#1")[0].read_text() == "GPU-1\n"  # UUIDs, not indexes
    assert 2 <= len(samples) <= 10
    assert {(s.device, s.utilization_pct, s.memory_used_mib) for s in samples} == {("GPU-1", 42, 1001)}
    assert set(sampler.asked) == {"GPU-1"} and sampler.closed


def test_the_executor_samples_nvml_for_a_discovered_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gpupool.service.executors import discover_machine
    from tests.executors import fake_pynvml

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    machine = discover_machine(node_name=NODE)
    ex = LocalExecutor(tmp_path / "state", machine=machine, tick_s=0.02, telemetry_interval_s=0.1)
    try:
        ex.launch(
            launch(
                tmp_path,
                "n#1",
                "import os, time; print(os.environ['CUDA_VISIBLE_DEVICES']); time.sleep(0.4)",
                ids=(1,),
            )
        )
        wait_for(ex, exited("n#1"))
        samples = ex.telemetry("n#1")
    finally:
        ex.close()
    assert log_paths(tmp_path / "logs", "n#1")[0].read_text() == "GPU-bbbbbbbb-1111\n"
    assert samples and {(s.device, s.utilization_pct) for s in samples} == {("GPU-bbbbbbbb-1111", 51)}
    assert fake_pynvml.inits == 0


def test_launch_and_terminate_return_at_once(executor: LocalExecutor, tmp_path: Path) -> None:
    t0 = time.monotonic()
    executor.launch(launch(tmp_path, "slow#1", IGNORES))
    executor.terminate("slow#1", grace_s=0.3)
    assert time.monotonic() - t0 < 0.5  # neither waits for the job, nor for its grace period
    wait_for(executor, exited("slow#1"))


def test_foreign_or_broken_state_files_are_ignored(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "garbage.json").write_text("{not json")
    (state / "other.json").write_text('{"unrelated": true}')
    with LocalExecutor(state, machine=simulated_machine(1, node_name=NODE)) as ex:
        assert ex.allocations() == set() and ex.poll() == []


def test_a_launch_cut_short_by_a_crash_is_adopted_not_run_twice(tmp_path: Path) -> None:
    # The executor died inside Popen: its state file holds only the intent (no pid), and the
    # process (a session leader carrying GPUPOOL_ALLOCATION_ID) runs on.
    state = tmp_path / "state"
    state.mkdir()
    intent = {"allocation_id": "cut#1", "job_id": "cut", "pid": None, "deadline_unix": None, "devices": [0]}
    (state / "cut#1.json").write_text(json.dumps(intent))
    never = {
        "allocation_id": "never#1",
        "job_id": "never",
        "pid": None,
        "deadline_unix": None,
        "devices": [1],
    }
    (state / "never#1.json").write_text(json.dumps(never))
    orphan = subprocess.Popen(
        [PY, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "GPUPOOL_ALLOCATION_ID": "cut#1"},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while "GPUPOOL_ALLOCATION_ID=cut#1" not in Path(f"/proc/{orphan.pid}/environ").read_bytes().decode(
            errors="replace"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with LocalExecutor(state, machine=simulated_machine(2, node_name=NODE), tick_s=0.02) as ex:
            assert ex.allocations() == {"cut#1"}
            assert json.loads((state / "cut#1.json").read_text())["pid"] == orphan.pid
            assert not (state / "never#1.json").exists()  # never started: reconcile may launch it
            ex.launch(launch(tmp_path, "cut#1", "print('second copy')"))  # a no-op
            ex.launch(launch(tmp_path, "never#1", "pass", ids=(1,)))  # runs now
            events = wait_for(ex, exited("never#1"))
            assert exit_of(events, "never#1").exit_code == 0
            ex.terminate("cut#1", 0)
            e = exit_of(wait_for(ex, exited("cut#1")), "cut#1")
            assert e.cause == "terminated"
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert not log_paths(tmp_path / "logs", "cut#1")[0].exists()
    finally:
        orphan.kill()
        orphan.wait()


def test_adopted_jobs_report_the_exit_status_their_process_had(tmp_path: Path) -> None:
    # The sandbox's wrapper records each job's status where the next executor reads it: a job
    # that ends while no executor runs, and one that ends under the adopting executor.
    machine = simulated_machine(4, node_name=NODE)
    first = LocalExecutor(tmp_path / "state", machine=machine, tick_s=0.02)
    first.launch(launch(tmp_path, "down#1", "import time; time.sleep(0.3); raise SystemExit(5)", ids=(0,)))
    first.launch(launch(tmp_path, "later#1", "import time; time.sleep(1.5); raise SystemExit(6)", ids=(1,)))
    segv = "import os, signal, time; time.sleep(0.3); os.kill(os.getpid(), signal.SIGSEGV)"
    first.launch(launch(tmp_path, "segv#1", segv, ids=(2,)))
    first.close()  # the server stops before any of them ends
    time.sleep(0.8)
    second = LocalExecutor(tmp_path / "state", machine=machine, tick_s=0.02)
    try:
        events = wait_for(second, lambda evs: all(exited(a)(evs) for a in ("down#1", "later#1", "segv#1")))
    finally:
        second.close()
    assert exit_of(events, "down#1").exit_code == 5
    assert exit_of(events, "later#1").exit_code == 6
    assert (exit_of(events, "segv#1").exit_code, exit_of(events, "segv#1").signal) == (None, signal.SIGSEGV)


def test_each_job_has_its_own_writable_tmp_and_shm(executor: LocalExecutor, tmp_path: Path) -> None:
    writer = (
        "import os, time\n"
        "for d in ('/tmp', '/var/tmp', '/dev/shm'):\n"
        "    open(os.path.join(d, 'mine'), 'w').write('x')\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    executor.launch(launch(tmp_path, "w1#1", writer, ids=(0,)))
    wait_ready(tmp_path, "w1#1")
    reader = "import os; print(sorted(os.listdir('/tmp') + os.listdir('/var/tmp') + os.listdir('/dev/shm')))"
    executor.launch(launch(tmp_path, "r1#1", reader, ids=(1,)))
    assert exit_of(wait_for(executor, exited("r1#1")), "r1#1").exit_code == 0
    assert log_paths(tmp_path / "logs", "r1#1")[0].read_text() == "[]\n"  # nothing of the other job
    assert "mine" not in os.listdir("/tmp")  # nor on the host


def test_accelerator_device_files_are_passed_into_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No /dev/nvidia* here: stand in with another device file the sandbox's own /dev lacks.
    from gpupool.service.executors import sandbox

    present = next((d for d in ("/dev/fuse", "/dev/kvm", "/dev/loop-control") if Path(d).exists()), None)
    if present is None:
        pytest.skip("no spare device file to stand in for an accelerator")
    code = f"import os; print(os.path.exists({present!r}))"
    with LocalExecutor(tmp_path / "s1", machine=simulated_machine(1, node_name=NODE)) as ex:
        ex.launch(launch(tmp_path, "nodev#1", code))
        wait_for(ex, exited("nodev#1"))
    monkeypatch.setattr(sandbox, "DEVICE_GLOBS", (present[:-1] + "*",))
    with LocalExecutor(tmp_path / "s2", machine=simulated_machine(1, node_name=NODE)) as ex:
        ex.launch(launch(tmp_path, "dev#1", code))
        wait_for(ex, exited("dev#1"))
    assert log_paths(tmp_path / "logs", "nodev#1")[0].read_text() == "False\n"
    assert log_paths(tmp_path / "logs", "dev#1")[0].read_text() == "True\n"
