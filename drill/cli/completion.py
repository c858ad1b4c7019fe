"""`drill completion bash|zsh|fish`: the shell completion script, from click's own machinery."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

_INSTALL = {
    "bash": 'eval "$(drill completion bash)"   # in ~/.bashrc',
    "zsh": 'eval "$(drill completion zsh)"    # in ~/.zshrc',
    "fish": "drill completion fish > ~/.config/fish/completions/drill.fish",
}


@click.command("completion")
@click.argument("shell", type=click.Choice(sorted(_INSTALL)))
def completion(shell: str) -> None:
    """Print the completion script for SHELL. Install it with:

    \b
      bash: eval "$(drill completion bash)"   (in ~/.bashrc)
      zsh:  eval "$(drill completion zsh)"    (in ~/.zshrc)
      fish: drill completion fish > ~/.config/fish/completions/drill.fish
    """
    from drill.cli import cli

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click knows all three
        raise click.UsageError(f"no completion for {shell}")
    script = cls(cli, {}, "drill", "_DRILL_COMPLETE").source()
    click.echo(script)
