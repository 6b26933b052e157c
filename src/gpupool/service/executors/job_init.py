"""The first program inside a job's sandbox: it drops to the job's account, runs the job, and
records the job's exit status for the service.

This module owns the in-sandbox half of ``executors/sandbox.py`` (ADR 0005). It is run as a
script (``python -I -S job_init.py ...``, standard library only, nothing imported from
gpupool), by bubblewrap, inside the job's PID and mount namespaces:

    job_init.py --status-fd N --env-fd M [--uid U --gid G --groups G1,G2] [--cwd DIR] -- ARGV...

1. reads the job's environment (JSON) from ``--env-fd`` (a memfd the service filled: the
   environment never appears in a command line, which any local user could read);
2. forks; the child resets the signals the service and Python changed (SIGTERM was ignored so
   that bubblewrap survives the service's SIGTERM to the process group; SIGPIPE), switches to
   ``--gid``/``--groups``/``--uid`` (after which it holds no capability), sets umask 077,
   enters ``--cwd`` as that account, closes the status descriptor and ``exec``\\ s ARGV;
3. waits for the child and writes ``{"exit_code": n}`` or ``{"signal": s}`` to ``--status-fd``
   (a file in the service's state directory, which the job can neither open nor inherit), then
   exits with the same status. A restarted service reads this file: the true exit status
   survives a restart of the service.

It ignores SIGTERM itself: the service signals the whole process group, so the job receives
SIGTERM directly; this process must live on to record how the job ended. SIGKILL of the group
(terminate's second step) kills it together with the job, and the service knows why.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings  # noqa: F401 - os.execvpe imports it lazily, when the job's account may not reach the stdlib

RESET = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGQUIT)


def _parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i] != "--":
        if not args[i].startswith("--") or i + 1 >= len(args):
            raise SystemExit(f"job_init: bad argument {args[i]!r}")
        opts[args[i][2:]] = args[i + 1]
        i += 2
    return opts, args[i + 1 :]


def _child(opts: dict[str, str], argv: list[str], env: dict[str, str], status_fd: int) -> None:
    try:
        for sig in RESET:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.close(status_fd)
        if "gid" in opts:
            groups = [int(g) for g in opts.get("groups", opts["gid"]).split(",") if g]
            os.setgroups(groups)
            os.setresgid(int(opts["gid"]), int(opts["gid"]), int(opts["gid"]))
        if "uid" in opts:
            # From root to another uid: the permitted and effective capabilities are cleared.
            os.setresuid(int(opts["uid"]), int(opts["uid"]), int(opts["uid"]))
        os.umask(0o077)
        cwd = opts.get("cwd", "/tmp")
        try:
            os.chdir(cwd)
        except OSError as e:
            print(
                f"gpupool: cannot enter the working directory {cwd}: {e.strerror}",
                file=sys.stderr,
                flush=True,
            )
            os._exit(126)
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as e:
            print(f"gpupool: cannot start {argv[0]!r}: {e.strerror}", file=sys.stderr, flush=True)
            os._exit(127)
    except BaseException as e:  # never return into the parent's code in the child
        print(f"gpupool: cannot start the job: {e}", file=sys.stderr, flush=True)
        os._exit(126)


def main(args: list[str]) -> int:
    opts, argv = _parse(args)
    status_fd, env_fd = int(opts["status-fd"]), int(opts["env-fd"])
    with os.fdopen(env_fd, "rb") as f:
        env = {str(k): str(v) for k, v in json.loads(f.read() or b"{}").items()}
    if not argv:
        raise SystemExit("job_init: no command")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    pid = os.fork()
    if pid == 0:
        _child(opts, argv, env, status_fd)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        doc, rc = {"signal": os.WTERMSIG(status)}, 128 + os.WTERMSIG(status)
    else:
        doc, rc = {"exit_code": os.WEXITSTATUS(status)}, os.WEXITSTATUS(status)
    os.write(status_fd, json.dumps(doc).encode())
    os.close(status_fd)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
