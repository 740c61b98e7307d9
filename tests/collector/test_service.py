"""How `dropsonde collector serve` is run: its defaults and its server."""

from __future__ import annotations

from tests.conftest import run_dropsonde

PUPPET_PORTS = {"8140", "8142", "8143", "8170", "8080", "8081", "4433"}


def test_the_default_port_is_none_of_puppets():
    result = run_dropsonde("collector", "serve", "--help")
    assert result.returncode == 0
    default = result.stdout.split("[default: 127.0.0.1:", 1)[1][:4]
    assert default.isdigit() and default not in PUPPET_PORTS
