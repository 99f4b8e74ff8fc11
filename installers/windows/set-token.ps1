<#
.SYNOPSIS
    Store the org token in the signed-in user's Credential Manager through
    `aitrack token set`. Run it in the USER's context: Intune platform script with
    "Run this script using the logged on credentials: Yes" (a SYSTEM script would store the
    token in SYSTEM's vault, where the user's aitrack cannot read it).

.DESCRIPTION
    The token reaches aitrack on stdin, never as an argument (arguments are visible to every
    process on the machine). Replace Get-AitrackToken with a call to your secret store that
    returns the token for this user; an Intune script body is visible to Intune admins and
    is cached on the device while it runs, so avoid pasting a shared long-lived token in it.
    Exit code 0 when the token is stored.

    A profile that gives a signal its own keychain account (logs_keychain_account in
    profiles/cloudwatch.toml, say) needs each key stored: deploy a copy of this script per
    account with 'token set --account NAME' below and that account's key.

    Offboarding: run `aitrack token delete` (and `--account NAME` for each per-signal
    account) in the user's context the same way.
#>
$ErrorActionPreference = 'Stop'

function Get-AitrackToken {
    # REPLACE: fetch this user's token, e.g. from your vault's API with the device's identity.
    throw 'Get-AitrackToken is a placeholder: make it return the token'
}

$aitrack = Join-Path $env:ProgramFiles 'aitrack\venv\Scripts\aitrack.exe'
if (-not (Test-Path $aitrack)) { Write-Output "aitrack is not installed ($aitrack)"; exit 1 }
try {
    $token = Get-AitrackToken
    $start = New-Object System.Diagnostics.ProcessStartInfo $aitrack, 'token set'
    $start.UseShellExecute = $false
    $start.RedirectStandardInput = $true
    $process = [System.Diagnostics.Process]::Start($start)
    $process.StandardInput.Write($token)  # no newline, no console encoding in between
    $process.StandardInput.Close()
    $process.WaitForExit()
    exit $process.ExitCode
}
catch {
    Write-Output "setting the aitrack token failed: $($_.Exception.Message)"
    exit 1
}
