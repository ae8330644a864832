"""`edgeopt targets list|show|schema`."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="List, show and describe target profiles.", no_args_is_help=True)

    @sub.command("list")
    def list_cmd(json_out: JsonOpt = False) -> None:
        """List the profiles found, with where each comes from."""
        with handled(json_out):
            from edgeopt.errors import ProfileError
            from edgeopt.profiles import list_profiles, load_profile

            sink = Sink(json_out)
            rows = []
            for name, path in list_profiles().items():
                try:
                    p = load_profile(str(path)).profile
                except ProfileError as exc:  # one broken file in a search folder does not hide the others
                    sink.warn(f"skipped {name}: {exc}")
                    continue
                rows.append({"name": name, "device_class": str(p.device_class), "format": str(p.convert.format),
                             "scheme": str(p.quantize.scheme), "runtime": str(p.runtime.name), "path": str(path)})
            sink.result(rows, lambda c: c.print(table(
                "target profiles", ["name", "device class", "format", "scheme", "runtime", "file"],
                [[r["name"], r["device_class"], r["format"], r["scheme"], r["runtime"], r["path"]] for r in rows])))

    @sub.command("show")
    def show_cmd(name: Annotated[str, typer.Argument(metavar="PROFILE", help="Profile name or .toml path.")], json_out: JsonOpt = False) -> None:
        """Show a profile fully resolved (after `extends`)."""
        with handled(json_out):
            import tomllib  # noqa: F401  (keeps the dependency explicit)

            from edgeopt.profiles import load_profile
            from edgeopt.profiles.render import to_toml

            r = load_profile(name)
            data = {"name": r.name, "path": str(r.path), "extends_chain": [str(p) for p in r.chain],
                    "sha256": r.sha256, "profile": r.profile.model_dump(mode="json")}
            Sink(json_out).result(data, lambda c: c.print(
                f"# {r.name} (resolved from {' <- '.join(str(p) for p in r.chain)})\n# sha256 {r.sha256}\n"
                + to_toml(r.profile.model_dump(mode="json")), markup=False))

    @sub.command("schema")
    def schema_cmd() -> None:
        """Print the profile JSON Schema (for editor completion and validation)."""
        with handled():
            import json

            from edgeopt.profiles.schema import Profile

            print(json.dumps(Profile.model_json_schema(), indent=2))

    app.add_typer(sub, name="targets")
