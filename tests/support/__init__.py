"""What tests share: loopback servers (Forge, PuppetDB, receivers, the
collector), Puppet sites built on disk, the CLI run as an admin would, and
fuzzing and CPU-time limits. Test modules import from here, never from each
other; conftest.py holds only fixtures."""
