"""The ``gateway`` command: a click group whose commands come from entry points.

Each sub-package registers its own commands under the ``gateway.commands``
entry-point group, and so can a plug-in; there is no hand-kept list here.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import click

from gateway import __version__


class EntryPointGroup(click.Group):
    """A click group that finds its sub-commands through entry points, lazily."""

    group_name = "gateway.commands"

    def _eps(self):
        return {ep.name: ep for ep in entry_points(group=self.group_name)}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._eps()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        ep = self._eps().get(name)
        if ep is None:
            return None
        try:
            return ep.load()
        except (ImportError, AttributeError) as exc:
            raise click.ClickException(f"command {name!r} could not be loaded from {ep.value}: {exc}") from None


@click.group(cls=EntryPointGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gateway")
def main() -> None:
    """Safeguarding interoperability gateway."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
