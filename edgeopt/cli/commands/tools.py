"""`edgeopt tools install-onnx2tf`: the third-party programs edgeopt runs from environments of their own."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Install the external tools edgeopt runs (each in its own environment).",
                      no_args_is_help=True)

    @sub.command("install-onnx2tf")
    def install_onnx2tf_cmd(
        python: Annotated[str | None, typer.Option("--python", metavar="PATH",
                                                   help="Python >= 3.12 to build the environment with "
                                                        "(default: python3.13/3.12 on PATH, then pyenv's).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Create the onnx2tf environment in the edgeopt cache (ONNX -> float TFLite); a no-op when present."""
        with handled(json_out):
            from edgeopt.convert.onnx2tf_env import install_onnx2tf
            from edgeopt.convert.onnx2tf_tool import ONNX2TF_VERSION

            sink = Sink(json_out)
            if not json_out:
                sink.info(f"installing onnx2tf {ONNX2TF_VERSION} (first time: a few minutes) ...")
            env = install_onnx2tf(python)
            data = {"path": str(env.path), "version": env.version, "python": env.python, "created": env.created,
                    "seconds": env.seconds, "size_mb": round(env.size_bytes / 1e6, 1)}
            sink.result(data, lambda c: c.print(
                f"onnx2tf {env.version} {'installed' if env.created else 'already installed'} in {env.path} "
                f"({data['size_mb']:g} MB" + (f", {env.seconds:g} s" if env.created else "") + ")"))

    app.add_typer(sub, name="tools")
