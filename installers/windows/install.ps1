<#
.SYNOPSIS
    Install, upgrade or remove aitrack on Windows. Intune-ready: runs as SYSTEM, silent,
    exit code 0 on success, 1 on failure, with a transcript in %ProgramData%\aitrack\logs.

.DESCRIPTION
    Creates a virtualenv in <Prefix>\venv from the wheelhouse shipped next to it (offline),
    writes the claude/codex shims to <Prefix>\shims and puts that directory FIRST on the
    machine PATH (the user PATH comes after it, so the shims win over npm's and other
    per-user installs), adds <Prefix>\bin (aitrack.cmd) to the machine PATH, and optionally
    installs a managed profile to %ProgramData%\aitrack\profile.toml after validating it.
    Running it again upgrades in place. The org token is never handled here: see
    set-token.ps1 (user context) and installers\README.md.

    Intune Win32 app (package this folder with IntuneWinAppUtil.exe):
      Install command:   powershell.exe -NoProfile -ExecutionPolicy Bypass -File install.ps1
      Uninstall command: powershell.exe -NoProfile -ExecutionPolicy Bypass -File install.ps1 -Uninstall
      Install behavior:  System
      Detection rule:    File  %ProgramFiles%\aitrack\venv\Scripts\aitrack.exe  exists

.PARAMETER Prefix
    Where aitrack lives. Default: %ProgramFiles%\aitrack.
.PARAMETER Wheelhouse
    A folder with the aitrack wheel and every dependency, made on Windows with
    `pip wheel --wheel-dir wheelhouse <aitrack wheel or source tree>`. Default: .\wheelhouse
    next to this script. Nothing is installed from a package index.
.PARAMETER Python
    python.exe (3.11 or newer) for the virtualenv. Default: .\python\python.exe next to
    this script if the package ships one (copied to <Prefix>\python), else the newest 3.11+
    the py launcher knows.
.PARAMETER ManagedProfile
    A profile TOML file to validate and install as %ProgramData%\aitrack\profile.toml.
    The policy key (aitrack-policy.reg) takes precedence over it.
.PARAMETER NoAgent
    Do not capture runs that do not go through aitrack (IDEs, the desktop app). By default
    they are: Claude Code's machine settings (`aitrack agent print-settings claude --os
    windows`) go to C:\Program Files\ClaudeCode\managed-settings.d\aitrack.json, and each
    user then needs `aitrack agent install` in their own context (an Intune script run with
    the logged on credentials): see installers\README.md. A re-run with -NoAgent removes
    that file.
.PARAMETER Agent
    The default (kept for older scripts).
.PARAMETER Uninstall
    Remove aitrack, its PATH entries, the installed profile and the agent's Claude Code
    settings. Users' ledgers, Credential Manager tokens and agents are theirs: run
    `aitrack token delete` and `aitrack agent uninstall` in their context first.
#>
[CmdletBinding()]
param(
    [string]$Prefix = (Join-Path $env:ProgramFiles 'aitrack'),
    [string]$Wheelhouse = (Join-Path $PSScriptRoot 'wheelhouse'),
    [string]$Python = '',
    [string]$ManagedProfile = '',
    [switch]$Agent,
    [switch]$NoAgent,
    [switch]$Uninstall
)

$ErrorActionPreference = 'Stop'
$Venv = Join-Path $Prefix 'venv'
$Shims = Join-Path $Prefix 'shims'
$Bin = Join-Path $Prefix 'bin'
$Aitrack = Join-Path $Venv 'Scripts\aitrack.exe'
$DataDir = Join-Path $env:ProgramData 'aitrack'
$ManagedTarget = Join-Path $DataDir 'profile.toml'
$EnvKey = 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
$ClaudeDropin = Join-Path $env:ProgramFiles 'ClaudeCode\managed-settings.d\aitrack.json'

function Invoke-Checked([string]$What, [scriptblock]$Command) {
    & $Command
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit $LASTEXITCODE)" }
}

function Get-MachinePath {
    # Read without expanding %SystemRoot% and friends, so that writing it back keeps them.
    $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($EnvKey, $false)
    try { return [string]$key.GetValue('Path', '', 'DoNotExpandEnvironmentNames') }
    finally { $key.Close() }
}

function Set-MachinePath([string[]]$Entries) {
    $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($EnvKey, $true)
    try { $key.SetValue('Path', ($Entries -join ';'), [Microsoft.Win32.RegistryValueKind]::ExpandString) }
    finally { $key.Close() }
    # Tell Explorer and other listeners, so that new shells see the change without a logoff.
    if (-not ('AitrackNative' -as [type])) {
        Add-Type -Namespace '' -Name AitrackNative -MemberDefinition @'
[DllImport("user32.dll", SetLastError = true, CharSet = CharSet.Auto)]
public static extern IntPtr SendMessageTimeout(IntPtr hWnd, uint Msg, UIntPtr wParam,
    string lParam, uint fuFlags, uint uTimeout, out UIntPtr lpdwResult);
'@
    }
    $result = [UIntPtr]::Zero
    [void][AitrackNative]::SendMessageTimeout([IntPtr]0xffff, 0x1A, [UIntPtr]::Zero,
        'Environment', 2, 5000, [ref]$result)
}

function Update-MachinePath([switch]$Remove) {
    $entries = @((Get-MachinePath) -split ';' | Where-Object {
        $_ -and ($_.TrimEnd('\') -ne $Shims) -and ($_.TrimEnd('\') -ne $Bin)
    })
    if (-not $Remove) { $entries = @($Shims) + $entries + @($Bin) }
    Set-MachinePath $entries
}

function Find-Python {
    if ($Python) { return $Python }
    $bundled = Join-Path $PSScriptRoot 'python\python.exe'
    if (Test-Path $bundled) {
        $target = Join-Path $Prefix 'python'
        if (Test-Path $target) { Remove-Item -Recurse -Force $target }
        Copy-Item -Recurse (Join-Path $PSScriptRoot 'python') $target
        return (Join-Path $target 'python.exe')
    }
    $py = Get-Command py.exe -ErrorAction SilentlyContinue
    if ($py) {
        foreach ($version in '3.13', '3.12', '3.11') {
            $exe = & $py.Source "-$version" -c 'import sys; print(sys.executable)' 2>$null
            if ($LASTEXITCODE -eq 0 -and $exe) { return $exe.Trim() }
        }
    }
    throw 'no Python 3.11 or newer found: install it for all users (python.org), ship python\ next to this script, or pass -Python'
}

New-Item -ItemType Directory -Force -Path (Join-Path $DataDir 'logs') | Out-Null
Start-Transcript -Append -Path (Join-Path $DataDir 'logs\install.log') | Out-Null
try {
    if ($Uninstall) {
        Update-MachinePath -Remove
        if (Test-Path $Prefix) { Remove-Item -Recurse -Force $Prefix }
        if (Test-Path $ManagedTarget) { Remove-Item -Force $ManagedTarget }
        if (Test-Path $ClaudeDropin) { Remove-Item -Force $ClaudeDropin }
        Write-Output "aitrack removed from $Prefix (the policy key, if any, belongs to its GPO/Intune policy)"
        exit 0
    }

    if ($ManagedProfile -and -not (Test-Path $ManagedProfile)) { throw "-ManagedProfile ${ManagedProfile}: no such file" }
    if (-not (Get-ChildItem -Path $Wheelhouse -Filter 'aitrack-*.whl' -ErrorAction SilentlyContinue)) {
        throw "no aitrack wheel in ${Wheelhouse}: build it on Windows with 'pip wheel --wheel-dir wheelhouse <aitrack wheel or source>'"
    }
    New-Item -ItemType Directory -Force -Path $Prefix | Out-Null
    $fresh = -not (Test-Path (Join-Path $Venv 'Scripts\python.exe'))
    if (-not $fresh) {
        & (Join-Path $Venv 'Scripts\python.exe') -c '' 2>$null
        $fresh = $LASTEXITCODE -ne 0  # its base interpreter was removed: rebuild
    }
    if ($fresh) {
        if (Test-Path $Venv) { Remove-Item -Recurse -Force $Venv }
        $base = Find-Python
        Invoke-Checked 'creating the virtualenv' { & $base -m venv $Venv }
    }
    # Only from the wheelhouse: never a package of that name from whatever index is reachable.
    $pipArgs = @('-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--quiet',
                 '--upgrade', '--no-index', '--find-links', $Wheelhouse, 'aitrack')
    Invoke-Checked 'pip install aitrack' { & (Join-Path $Venv 'Scripts\python.exe') @pipArgs }

    if ($ManagedProfile) {
        Invoke-Checked "validating $ManagedProfile" { & $Aitrack profile validate $ManagedProfile }
        Copy-Item -Force $ManagedProfile $ManagedTarget
    }

    Invoke-Checked 'installing the shims' { & $Aitrack shims install --dir $Shims | Out-Null }
    New-Item -ItemType Directory -Force -Path $Bin | Out-Null
    Set-Content -Encoding ASCII -Path (Join-Path $Bin 'aitrack.cmd') -Value "@`"%~dp0..\venv\Scripts\aitrack.exe`" %*"
    Update-MachinePath
    if ($NoAgent) {
        Remove-Item -Force -ErrorAction SilentlyContinue $ClaudeDropin
    }
    else {
        # untested: Windows. UTF-8 without a BOM, as Claude Code reads JSON.
        $settings = (& $Aitrack agent print-settings claude --os windows | Out-String)
        if ($LASTEXITCODE -ne 0) { throw "aitrack agent print-settings claude failed (exit $LASTEXITCODE)" }
        New-Item -ItemType Directory -Force -Path (Split-Path $ClaudeDropin) | Out-Null
        [System.IO.File]::WriteAllText($ClaudeDropin, $settings, (New-Object System.Text.UTF8Encoding $false))
        Write-Output "Claude Code's machine settings point at each user's agent: $ClaudeDropin"
    }
    Write-Output "installed $(& $Aitrack --version) in $Prefix; shims first on the machine PATH"
    exit 0
}
catch {
    Write-Output "aitrack install failed: $($_.Exception.Message)"
    exit 1
}
finally {
    Stop-Transcript | Out-Null
}
