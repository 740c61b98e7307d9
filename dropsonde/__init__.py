"""dropsonde: an opt-in, privacy-first telemetry probe for Puppet and OpenVox sites."""

__version__ = "0.1.0"
