"""Container jobs on the local executor: rootless Podman run as the job's own account.

This module owns ``Podman``: the command line that runs a job that names an image
(``Launch.image``, ADR 0013) and the clean-up after it. Podman is Debian's rootless OCI runtime
(``apt-get install podman``); Apptainer is not packaged in Debian 12, and Podman reads the same
OCI references and image files as Kubernetes and pyxis/enroot.

How a container job keeps the isolation of ADR 0005:

- **its own account**: the executor starts ``podman run`` through the sandbox's wrapper
  (``job_init.py``), which drops to the job's account first; Podman then runs *rootless* as that
  account (user namespace, subordinate ids from ``/etc/subuid``), so the container's "root" is
  the account's uid on the host and nothing in it has more rights than the account;
- **no service files**: the container sees its image's root file system, its working directory
  (bound when given) and nothing else of the host; Podman's storage is per account under the
  service's data directory (``<data>/containers/<uid>``, 0700, owned by the account);
- **only its environment**: the job's variables are passed by name (``--env NAME``, values from
  Podman's own environment, which the wrapper set from the memfd), never on a command line;
- **its accelerators only**: NVIDIA GPUs by CDI (``--device nvidia.com/gpu=<index>``) where a
  CDI spec exists (``nvidia-ctk cdi generate``), else by their device files; Rebellions
  (``/dev/rbln<N>``, ``RBLN_DEVICES``) and FuriosaAI (``/dev/rngd/npu<N>*``,
  ``FURIOSA_DEVICES``) NPUs by their device files and visible-device variables; plus
  ``CUDA_VISIBLE_DEVICES``;
- **no privilege**: ``--cap-drop=all``, ``no-new-privileges``, the host's rlimits
  (``--ulimit host``: a rootless runtime may not raise them, and a container must not).

Bubblewrap is not used around Podman: Podman needs ``newuidmap`` (setuid), which bubblewrap's
``no_new_privs`` disables; the container's own namespaces take its place.

A container outlives ``podman run`` when the client is killed (conmon keeps it), so the
executor removes it by name (``podman rm --force``) once the job's process group has ended.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gpupool.fleetfile import load_catalogue
from gpupool.service.container_image import parse_image
from gpupool.service.executors.sandbox import DEFAULT_PATH
from gpupool.service.identity import Account

__all__ = ["NPU_DEVICES", "Podman", "container_devices", "container_name", "stack_of"]

log = logging.getLogger("gpupool.executors.podman")

#: Per accelerator stack: the device files of accelerator ``{i}`` and its visible-device variable.
NPU_DEVICES: Mapping[str, tuple[tuple[str, ...], str]] = {
    "rbln": (("/dev/rbln{i}",), "RBLN_DEVICES"),
    "furiosa": (("/dev/rngd/npu{i}*",), "FURIOSA_DEVICES"),
}
#: NVIDIA's shared device files, passed with any GPU when there is no CDI spec.
NVIDIA_SHARED = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
#: Variables that are Podman's own (its environment passes the job's by name): a container
#: job's PATH and HOME are its image's.
PODMAN_ENV = frozenset({"XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "HOME", "PATH"})
#: Variables a container job gets from the platform, on top of its submitter's.
PLATFORM_ENV_PREFIXES = ("GPUPOOL_",)
PLATFORM_ENV = ("CUDA_VISIBLE_DEVICES", "LANG", *(v for _, v in NPU_DEVICES.values()))


def container_name(allocation_id: str) -> str:
    """The container's name: unique per allocation, in Podman's alphabet."""
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in allocation_id)
    return f"gpupool-{safe}"[:200]


def _cdi_has_nvidia() -> bool:
    return any(glob.glob(f"{d}/nvidia*.yaml") or glob.glob(f"{d}/nvidia*.json") for d in CDI_DIRS)


@dataclass(frozen=True, slots=True)
class Podman:
    """How to run containers here: the ``podman`` binary and the storage root (per account below)."""

    podman: str
    storage: Path

    @staticmethod
    def find(storage: Path) -> Podman | None:
        found = shutil.which("podman")
        return Podman(found, Path(storage)) if found else None

    def _globals(self, home: Path) -> list[str]:
        args = [
            self.podman,
            "--root", str(home / "storage"),
            "--runroot", str(home / "run"),
            "--tmpdir", str(home / "tmp"),
            # No systemd session for a job's account: plain cgroupfs and a file for events.
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            "--log-level=fatal",  # Podman's warnings (single uid mapping, ...) are not the job's output
        ]  # fmt: skip
        # crun refuses a hybrid cgroup hierarchy (v1 controllers with a v2 mount that holds
        # some); runc runs there. Pure v1 or v2 keeps Podman's default runtime.
        if Path("/sys/fs/cgroup/unified").is_dir() and (runc := shutil.which("runc")):
            args.append(f"--runtime={runc}")
        return args

    def home(self, account: Account | None) -> Path:
        """The account's Podman storage (created 0700, owned by it); the service's own without one.

        Podman runs as the account, so the account must pass every directory above its
        storage: the service's data directory is made searchable (0711, not listable, as for
        Slurm jobs: what is inside stays closed by its own mode); a directory above it that the
        account cannot pass is an ``OSError`` naming it (the job fails saying so).
        """
        uid = account.uid if account is not None else os.geteuid()
        home = self.storage / str(uid)
        self.storage.mkdir(parents=True, exist_ok=True, mode=0o711)
        os.chmod(self.storage, 0o711)  # traversable, not listable: each account finds only its own
        if account is not None and os.geteuid() == 0 and account.uid != 0:
            data = self.storage.parent
            os.chmod(data, (data.stat().st_mode & 0o7777) | 0o011)
            for above in data.resolve().parents:
                if not above.stat().st_mode & 0o001:
                    raise OSError(
                        f"job accounts cannot pass {above} (mode {above.stat().st_mode & 0o777:o}) to reach "
                        f"their container storage under {self.storage}: put the data directory where they can"
                    )
        for sub in ("", "storage", "run", "tmp", "config"):
            d = home / sub
            d.mkdir(exist_ok=True, mode=0o700)
            if account is not None and os.geteuid() == 0:
                os.chown(d, account.uid, account.gid)
        return home

    def environment(self, home: Path) -> dict[str, str]:
        """What Podman itself needs in its environment (the wrapper adds the job's variables)."""
        return {
            "XDG_RUNTIME_DIR": str(home / "run"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "HOME": str(home),
            "PATH": DEFAULT_PATH,
        }

    def run_argv(
        self,
        *,
        image: str,
        argv: Sequence[str],
        name: str,
        home: Path,
        env_names: Sequence[str],
        devices: Sequence[str],
        cwd: Path | None,
    ) -> list[str]:
        """``podman run`` of ``argv`` in ``image`` (see the module docstring)."""
        ref = parse_image(image)
        args = [*self._globals(home), "run", "--rm", "--replace", "--quiet", f"--name={name}"]
        args += ["--network=host", "--ulimit=host", "--cap-drop=all", "--security-opt=no-new-privileges"]
        # Registry images are pulled when missing; an image file is read as the job's account.
        args.append("--pull=missing" if not ref.local else "--pull=never")
        for n in sorted(set(env_names)):
            args += ["--env", n]
        for d in devices:
            args += ["--device", d]
        if cwd is not None:
            args += ["--volume", f"{cwd}:{cwd}", f"--workdir={cwd}"]
        return [*args, image, *argv]

    def remove_argv(self, name: str, home: Path) -> list[str]:
        return [*self._globals(home), "rm", "--force", "--ignore", "--time=0", name]

    def remove(self, name: str, account: Account | None) -> None:
        """Remove the allocation's container if it outlived its ``podman run`` (best effort)."""
        home = self.storage / str(account.uid if account is not None else os.geteuid())
        as_other = account is not None and os.geteuid() == 0
        try:
            self._run_as(self.remove_argv(name, home), home, account if as_other else None)
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("podman: cannot remove container %s: %s", name, e)

    def _run_as(self, argv: list[str], home: Path, account: Account | None) -> None:
        subprocess.run(
            argv,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", **self.environment(home)},
            user=account.uid if account is not None else None,
            group=account.gid if account is not None else None,
            extra_groups=[] if account is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=home,
            timeout=60,
            check=False,
        )


@cache
def stack_of(model: str) -> str:
    """The software stack of a catalogue model (``cuda`` for one the catalogue lacks)."""
    cat = load_catalogue()
    return cat[model].stack if model in cat else "cuda"


def container_devices(stack: str, indices: Sequence[int]) -> tuple[list[str], dict[str, str]]:
    """(``--device`` values, visible-device variables) for accelerators ``indices`` of ``stack``."""
    if not indices:
        return [], {}
    if stack in NPU_DEVICES:
        patterns, variable = NPU_DEVICES[stack]
        files = sorted({f for i in indices for p in patterns for f in glob.glob(p.format(i=i))})
        return files, {variable: ",".join(map(str, indices))}
    # NVIDIA (and the default): CDI names the devices and their libraries; else the files.
    if _cdi_has_nvidia():
        return [f"nvidia.com/gpu={i}" for i in indices], {}
    files = [f"/dev/nvidia{i}" for i in indices if os.path.exists(f"/dev/nvidia{i}")]
    if files:
        files += [f for f in NVIDIA_SHARED if os.path.exists(f)]
    return files, {}
