"""Who the user is and what the profile says: paths, profiles, managed sources,
identity, the keychain, private files."""
