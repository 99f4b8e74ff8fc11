#!/bin/sh
# Remove what aitrack's macOS package installed. Run as root (Jamf/Kandji: as a policy
# script). Run `aitrack token delete` and `aitrack agent uninstall` in each user's session
# first (tokens revoked, their settings files restored); users' ledgers
# (~/Library/Application Support/aitrack) are left to them.
set -eu

home=/opt/aitrack
if [ -L /usr/local/bin/aitrack ]; then
    case $(readlink /usr/local/bin/aitrack) in "$home"/*) rm -f /usr/local/bin/aitrack ;; esac
fi
rm -f /etc/paths.d/aitrack
rm -f "/Library/Application Support/ClaudeCode/managed-settings.d/aitrack.json"
rmdir "/Library/Application Support/ClaudeCode/managed-settings.d" 2>/dev/null || true
rm -f /Library/LaunchAgents/io.aitrack.agent-install.plist
rm -f "/Library/Application Support/aitrack/profile.toml"
rmdir "/Library/Application Support/aitrack" 2>/dev/null || true
rm -rf "$home"
pkgutil --forget io.aitrack.pkg >/dev/null 2>&1 || true
echo "aitrack uninstalled (the io.aitrack configuration profile, if any, is removed in the MDM)"
