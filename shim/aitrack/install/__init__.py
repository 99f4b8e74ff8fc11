"""Putting aitrack in place: PATH shims, the tools' settings wired to the agent,
the agent's service units, and `doctor`."""
