from __future__ import annotations

import sys

import click

from aitrack.cli.common import UserError, echo_json, load_profile

ACCOUNT_HELP = "Keychain entry to use (default: the profile's endpoint.keychain_account)."


def _account(account: str | None) -> str:
    if account:
        return account
    p = load_profile()
    return p.endpoint.keychain_account if p.endpoint else "default"


def _read_token() -> str:
    """From stdin when piped (how MDM scripts provision it), else a hidden prompt."""
    if sys.stdin is None:
        return ""
    if not sys.stdin.isatty():
        # bytes decoded as UTF-8: the console code page (Windows) would garble a unicode token
        data = getattr(sys.stdin, "buffer", sys.stdin).read()
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
        except UnicodeDecodeError:
            raise UserError("the token on stdin is not UTF-8 text") from None
        return text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    return click.prompt("Token", hide_input=True, confirmation_prompt=True, err=True)


@click.group("token")
def token_group() -> None:
    """Store, check or remove the org endpoint's token in the OS keychain.

    \b
    Examples:
      aitrack token set              # prompts, input hidden
      printf %s "$TOKEN" | aitrack token set
      aitrack token status --json
    """


# Extra arguments are caught below rather than by click, whose error would echo them.
@token_group.command("set", context_settings={"ignore_unknown_options": True,
                                              "allow_extra_args": True})
@click.option("--account", help=ACCOUNT_HELP)
@click.pass_context
def set_token(ctx: click.Context, account: str | None) -> None:
    """Read the token from stdin or a hidden prompt and store it in the keychain.

    The token is never taken as an argument: arguments end up in shell history and ps.

    \b
    Example:
      printf %s "$TOKEN" | aitrack token set
    """
    from aitrack import keychain

    if ctx.args:
        raise UserError("`token set` takes no argument but --account: the token comes from stdin "
                        "or a hidden prompt, never an argument (shell history, ps); pipe it with "
                        "`printf %s \"$TOKEN\" | aitrack token set`")
    name = _account(account)
    try:
        keychain.backend_name()  # refuse before prompting for a token that cannot be kept
        token = _read_token()
        if not token or token != token.strip():
            raise UserError("the token is empty or has surrounding whitespace: pipe it with "
                            "`printf %s \"$TOKEN\" | aitrack token set`")
        keychain.set_token(name, token)
    except keychain.KeychainUnavailable as exc:
        raise UserError(str(exc)) from None
    click.echo(f"token stored in the keychain (account {name!r})", err=True)


@token_group.command("status")
@click.option("--account", help=ACCOUNT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(account: str | None, as_json: bool) -> None:
    """Say whether a token is stored, and in which keychain. Never shows the token.

    Exits 0 when a token is present, 1 when it is not.

    \b
    Example:
      aitrack token status --json
    """
    from aitrack import keychain

    name = _account(account)
    try:
        st = keychain.status(name)
    except keychain.KeychainUnavailable as exc:
        if as_json:
            echo_json({"account": name, "backend": None, "present": False, "error": str(exc)})
            raise SystemExit(1) from None
        raise UserError(str(exc)) from None
    if as_json:
        echo_json({"account": st.account, "backend": st.backend, "present": st.present})
    elif st.present:
        click.echo(f"token present for account {name!r} in {st.backend}")
    else:
        click.echo(f"no token for account {name!r} in {st.backend}: run `aitrack token set`")
    raise SystemExit(0 if st.present else 1)


@token_group.command("delete")
@click.option("--account", help=ACCOUNT_HELP)
def delete(account: str | None) -> None:
    """Remove the token from the keychain (offboarding, rotation).

    \b
    Example:
      aitrack token delete
    """
    from aitrack import keychain

    name = _account(account)
    try:
        removed = keychain.delete_token(name)
    except keychain.KeychainUnavailable as exc:
        raise UserError(str(exc)) from None
    click.echo(f"token for account {name!r} " + ("deleted" if removed else "was not stored"),
               err=True)


def register(cli: click.Group) -> None:
    cli.add_command(token_group)
