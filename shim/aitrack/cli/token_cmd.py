from __future__ import annotations

import sys

import click

from aitrack.cli.common import UserError, echo_json, load_profile, say
from aitrack.config import keychain, paths, profile
from aitrack.config.schema import SIGNALS

ACCOUNT_HELP = ("Keychain entry to use (default: the profile's endpoint.keychain_account); "
                "name a signal's own account, e.g. endpoint.logs_keychain_account, here.")


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

    A signal may have a key of its own (CloudWatch Logs does): the profile then names its
    account in endpoint.metrics_keychain_account, logs_keychain_account or
    traces_keychain_account, and you store that key with --account.

    \b
    Examples:
      aitrack token set              # prompts, input hidden
      printf %s "$TOKEN" | aitrack token set
      printf %s "$LOGS_KEY" | aitrack token set --account cloudwatch-logs
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

    if ctx.args:
        raise UserError("`token set` takes no argument but --account: the token comes from stdin "
                        "or a hidden prompt, never an argument (shell history, ps); pipe it with "
                        "`printf %s \"$TOKEN\" | aitrack token set`")
    name = _account(account)
    try:
        keychain.backend_name()  # refuse before prompting for a token that cannot be kept
        token = _read_token()
        problem = keychain.token_problem(token)
        if problem:  # refused here, not by every later run: nothing is stored
            raise UserError(f"{problem}; nothing was stored: pipe the token alone with "
                            "`printf %s \"$TOKEN\" | aitrack token set`")
        keychain.set_token(name, token)
    except keychain.KeychainUnavailable as exc:
        raise UserError(str(exc)) from None
    say(f"token stored in the keychain (account {name!r})", err=True)
    unused = _unused(name)
    if unused:
        say(f"aitrack: {unused}", err=True)


def _unused(account: str) -> str | None:
    """Why nothing would send the token of `account`, when nothing would."""

    endpoint = profile.load(paths.resolve()).endpoint  # its problems were printed already
    if endpoint is None:
        return ("the profile is local-only (no endpoint), so nothing uses this token until a "
                "profile names an endpoint: see `aitrack profile show`")
    used = endpoint.accounts()
    if account not in used:
        return (f"the profile's endpoint uses account {', '.join(map(repr, used))}, not "
                f"{account!r}: nothing uses this token until the profile names it")
    return None


@token_group.command("status")
@click.option("--account", help="Check only this keychain entry (default: every account the "
              "profile uses, endpoint.keychain_account and any per-signal one).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(account: str | None, as_json: bool) -> None:
    """Say whether the tokens are stored, and in which keychain. Never shows a token.

    Checks every account the profile uses (a signal may have its own), or only --account.
    Exits 0 when every token checked is present, 1 when one is not.

    \b
    Examples:
      aitrack token status --json
      aitrack token status --account cloudwatch-logs
    """

    endpoint = None if account else load_profile().endpoint
    name = account or (endpoint.keychain_account if endpoint else "default")
    # account -> the signals whose token it holds (none named: a single account checked)
    accounts = endpoint.accounts() if endpoint is not None else {name: ()}
    try:
        backend = keychain.backend_name()
        present = {a: keychain.get_token(a) is not None for a in {name, *accounts}}
    except keychain.KeychainUnavailable as exc:
        if as_json:
            echo_json({"account": name, "backend": None, "present": False, "error": str(exc)})
            raise SystemExit(1) from None
        raise UserError(str(exc)) from None
    if as_json:
        data = {"account": name, "backend": backend, "present": present[name]}
        if endpoint is not None:
            data["accounts"] = [{"account": a, "signals": list(signals), "present": present[a]}
                                for a, signals in accounts.items()]
        echo_json(data)
    else:
        for a, signals in accounts.items():
            which = f" ({', '.join(signals)})" if len(accounts) > 1 else ""
            if present[a]:
                say(f"token present for account {a!r}{which} in {backend}")
            else:
                say(f"no token for account {a!r}{which} in {backend}: run "
                    f"`{keychain.set_command(a)}`")
    raise SystemExit(0 if all(present[a] for a in accounts) else 1)


@token_group.command("delete")
@click.option("--account", help="Remove only this keychain entry (default: every account the "
              "profile names, endpoint.keychain_account and any per-signal one).")
def delete(account: str | None) -> None:
    """Remove the tokens from the keychain (offboarding, rotation).

    Without --account: every account the profile names (a signal may have its own).

    \b
    Examples:
      aitrack token delete
      aitrack token delete --account cloudwatch-logs
    """

    if account:
        names = [account]
    else:
        endpoint = load_profile().endpoint
        names = ([endpoint.keychain_account, *endpoint.accounts(SIGNALS)] if endpoint
                 else ["default"])
    for name in dict.fromkeys(names):
        try:
            removed = keychain.delete_token(name)
        except keychain.KeychainUnavailable as exc:
            raise UserError(str(exc)) from None
        say(f"token for account {name!r} " + ("deleted" if removed else "was not stored"),
            err=True)


def register(cli: click.Group) -> None:
    cli.add_command(token_group)
