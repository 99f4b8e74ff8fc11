"""What leaves the machine: OTLP codec, egress policy, the outbox, the forwarder and
its HTTPS transport, aitrack's normalised metric family."""
