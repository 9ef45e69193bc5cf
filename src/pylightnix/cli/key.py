"""``pylightnix key generate|public``: ed25519 keys that sign pushed claims."""

from __future__ import annotations

import click

from pylightnix.remote import generate_key, public_key


@click.group("key")
def key_cmd() -> None:
    """Make and show the keys that sign what `pylightnix push --sign` sends.

    \b
    Examples:
      pylightnix key generate laptop-1 --secret ~/.plx-laptop.sec
      pylightnix key public --secret ~/.plx-laptop.sec
    """


@key_cmd.command("generate")
@click.argument("name")
@click.option("--secret", required=True, metavar="FILE", help="Secret key file to create (0600).")
def generate_cmd(name: str, secret: str) -> None:
    """Create a secret key NAME in FILE and print its public key (for --trusted-key).

    \b
    Examples:
      pylightnix key generate ci-1 --secret ci-1.sec
    """
    click.echo(generate_key(name, secret))


@key_cmd.command("public")
@click.option("--secret", required=True, metavar="FILE", help="A secret key file.")
def public_cmd(secret: str) -> None:
    """Print the public key of a secret key file.

    \b
    Examples:
      pylightnix key public --secret ci-1.sec
    """
    click.echo(public_key(secret))
