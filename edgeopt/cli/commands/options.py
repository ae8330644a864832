"""Options and arguments shared by several commands, defined once (name, metavar, help).

Metavars are spelt for people (MODEL, FILE, DIR, N); choices come from edgeopt.vocabulary.
Values are checked by the library's one rule for each (e.g. `check_threads`), not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
TargetOpt = Annotated[str, typer.Option("--target", "-t", metavar="PROFILE",
                                        help="Profile name (see `edgeopt targets list`) or path to a .toml file.")]
OutDirOpt = Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder (written atomically).")]
OutModelOpt = Annotated[Path, typer.Option("--out", "-o", metavar="FILE", help="Output model (.keras), written atomically.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", metavar="N",
                                                help="Benchmark threads, 0 = all cores (overrides the profile).")]
CalibOpt = Annotated[Path | None, typer.Option("--calib", metavar="FILE", help="Calibration data .npz (x) or .npy.")]
EvalOpt = Annotated[Path | None, typer.Option("--eval", metavar="FILE", help="Eval data .npz (x, y): top-1 accuracy.")]
FinetuneOpt = Annotated[Path | None, typer.Option("--finetune", metavar="FILE", help="Training data .npz (x, y) for fine-tuning.")]
UnsafeLoadOpt = Annotated[bool, typer.Option("--unsafe-load", help="Trust the model file: allow Lambda layers and "
                                             "SavedModel ops that touch files (runs code from the model file).")]
KerasModelArg = Annotated[Path, typer.Argument(metavar="MODEL", help=".keras, .h5 or SavedModel folder")]
TfliteModelArg = Annotated[Path, typer.Argument(metavar="MODEL", help="int8 .tflite model")]
ShapeOpt = Annotated[list[str] | None, typer.Option(
    "--shape", metavar="NAME=1x3x640x640",
    help="Size of an input's symbolic dims (repeatable; without NAME= for a single-input model).")]

# A device over SSH (`bench --remote`, `build --remote`): one definition, so both commands take the same options.
RemoteOpt = Annotated[str | None, typer.Option(
    "--remote", metavar="[USER@]HOST", help="Time on a device over SSH: [user@]host or a ~/.ssh/config alias.")]
RemotePythonOpt = Annotated[str, typer.Option("--remote-python", metavar="PYTHON",
                                              help="Python on the device that has edgeopt.")]
SshOptionOpt = Annotated[list[str] | None, typer.Option("--ssh-option", metavar="KEY=VALUE",
                                                        help="Extra ssh -o KEY=VALUE (repeatable).")]
SshConfigOpt = Annotated[Path | None, typer.Option("--ssh-config", metavar="FILE",
                                                   help="ssh config file to use instead of ~/.ssh/config (ssh -F).")]
KnownHostsOpt = Annotated[Path | None, typer.Option("--known-hosts", metavar="FILE",
                                                    help="known_hosts file with the device's host key.")]
SshPortOpt = Annotated[int | None, typer.Option("--ssh-port", metavar="PORT", help="SSH port on the device.")]
RemoteTimeoutOpt = Annotated[float, typer.Option("--remote-timeout", metavar="S",
                                                 help="Seconds allowed for each ssh step.")]


def remote_spec(remote: str | None, python: str, ssh_option: list[str] | None, ssh_config: Path | None,
                known_hosts: Path | None, ssh_port: int | None, timeout: float) -> Any:
    """The edgeopt.benchmark.remote.RemoteSpec of the options above (None without --remote); checked there."""
    if remote is None:
        return None
    from edgeopt.benchmark.remote import RemoteSpec

    return RemoteSpec(host=remote, python=python, ssh_options=tuple(ssh_option or ()), ssh_config=ssh_config,
                      known_hosts=known_hosts, port=ssh_port, timeout=timeout)
