"""Site id: SHA-512 of the CA certificate's DER bytes (+ seed), or of a local random secret."""

from __future__ import annotations

import os
import stat
import subprocess
import threading

import pytest

from dropsonde.cache_dir import CacheDir
from dropsonde.errors import Failure
from dropsonde.siteid import SECRET_FILENAME, compute_site_id, first_certificate_der, local_secret


def make_ca(tmp_path, name="ca"):
    key, pem, der = tmp_path / f"{name}.key", tmp_path / f"{name}.pem", tmp_path / f"{name}.der"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(pem), "-days", "2", "-subj", f"/CN=Puppet CA: {name}"],
        check=True, capture_output=True,
    )
    subprocess.run(["openssl", "x509", "-in", str(pem), "-outform", "DER", "-out", str(der)], check=True)
    return pem, der


def openssl_sha512(data: bytes) -> str:
    out = subprocess.run(["openssl", "dgst", "-sha512", "-r"], input=data, capture_output=True, check=True).stdout
    return out.split()[0].decode()


def test_hash_of_the_first_certificates_der_bytes_with_and_without_seed(tmp_path):
    pem, der = make_ca(tmp_path)
    other_pem, _ = make_ca(tmp_path, "intermediate")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem.read_bytes() + other_pem.read_bytes())
    assert first_certificate_der(bundle) == der.read_bytes()
    site = compute_site_id(bundle, None, None, CacheDir.open(tmp_path / "state"))
    assert site.source == "ca-certificate" and site.note is None
    assert site.value == openssl_sha512(der.read_bytes())
    seeded = compute_site_id(bundle, "pepper", None, CacheDir.open(tmp_path / "state"))
    assert seeded.value == openssl_sha512(der.read_bytes() + b"pepper")
    assert seeded.value != site.value


def test_two_sites_differ_and_servers_of_one_site_agree(tmp_path):
    pem_a, _ = make_ca(tmp_path, "a")
    pem_b, _ = make_ca(tmp_path, "b")
    a1 = compute_site_id(pem_a, None, None, CacheDir.open(tmp_path / "compile1"))
    a2 = compute_site_id(pem_a, None, None, CacheDir.open(tmp_path / "compile2"))
    b = compute_site_id(pem_b, None, None, CacheDir.open(tmp_path / "compile1"))
    assert a1.value == a2.value != b.value


def test_without_a_ca_certificate_a_local_secret_is_made_once(tmp_path):
    """Not a hash of guessable facts (certname, a path): a 256-bit random secret,
    kept 0600 in the state directory and mixed with the seed."""
    state = tmp_path / "state"
    first = compute_site_id(tmp_path / "missing.pem", "pepper", None, CacheDir.open(state))
    assert first.source == "local-secret" and "random secret" in first.note and str(tmp_path) not in first.note
    secret_file = state / SECRET_FILENAME
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = bytes.fromhex(secret_file.read_text())
    assert len(secret) == 32
    assert first.value == openssl_sha512(secret + b"pepper")
    again = compute_site_id(tmp_path / "missing.pem", "pepper", None, CacheDir.open(state))
    assert again.value == first.value and secret_file.read_text() == (state / SECRET_FILENAME).read_text()
    assert compute_site_id(tmp_path / "missing.pem", None, None, CacheDir.open(state)).value == openssl_sha512(secret)
    elsewhere = compute_site_id(tmp_path / "missing.pem", "pepper", None, CacheDir.open(tmp_path / "other"))
    assert elsewhere.value != first.value  # two sites with the same host name no longer collide
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n")
    assert compute_site_id(garbage, "pepper", None, CacheDir.open(state)).value == first.value
    assert sorted(os.listdir(state)) == [SECRET_FILENAME]  # no temporary file left behind


def test_a_planted_symlink_is_never_followed(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / "target"
    os.symlink(target, state / SECRET_FILENAME)  # dangling: following it would create target
    with pytest.raises(Failure, match="symbolic link"):
        local_secret(CacheDir.open(state))
    assert not target.exists()
    target.write_text("a" * 64 + "\n")  # an existing target is not read through the link either
    with pytest.raises(Failure, match="symbolic link"):
        local_secret(CacheDir.open(state))


def test_a_damaged_secret_is_an_error_naming_the_file(tmp_path):
    (tmp_path / SECRET_FILENAME).write_text("not a secret\n")
    with pytest.raises(Failure, match=f"{SECRET_FILENAME}: not a site id secret"):
        local_secret(CacheDir.open(tmp_path))
    os.unlink(tmp_path / SECRET_FILENAME)
    os.mkfifo(tmp_path / SECRET_FILENAME)  # opened without blocking, refused
    with pytest.raises(Failure, match="not a regular file"):
        local_secret(CacheDir.open(tmp_path))


def test_concurrent_first_runs_agree_on_one_secret(tmp_path):
    results = []
    threads = [threading.Thread(target=lambda: results.append(local_secret(CacheDir.open(tmp_path)))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 8 and len(set(results)) == 1
    assert sorted(os.listdir(tmp_path)) == [SECRET_FILENAME]


def test_override_wins(tmp_path):
    pem, _ = make_ca(tmp_path)
    assert compute_site_id(pem, "seed", "my-site", CacheDir.open(tmp_path)).value == "my-site"


def test_an_empty_localcacert_setting_is_said_to_be_empty(tree):
    """An empty setting was read as the path "" (the current directory): "Is a directory"."""
    from dropsonde.session import Session

    with open(tree.confdir / "puppet.conf", "a", encoding="utf-8") as conf:
        conf.write("localcacert =\n")
    given = {"confdir": str(tree.confdir), "codedir": str(tree.codedir), "cachepath": str(tree.cachepath)}
    with Session(given) as session:
        site_id = session.report().site_id
    assert site_id.source == "local-secret"
    assert "(the setting is empty)" in site_id.note


@pytest.mark.parametrize("digits", [32, 63, 65])
def test_a_secret_of_the_wrong_length_is_refused_without_a_traceback(tmp_path, digits):
    """The mutation run: the 64-digit rule could loosen without a test failing."""
    (tmp_path / SECRET_FILENAME).write_text("a" * digits + "\n")
    with pytest.raises(Failure, match=f"{SECRET_FILENAME}: not a site id secret \\(expected 64 hex digits\\)"):
        local_secret(CacheDir.open(tmp_path))


def test_a_file_of_begin_lines_is_refused_in_linear_time(tmp_path):
    """The outside review: the PEM regex rescanned to the end for every BEGIN line
    (64 KiB: 2 s, 1 MiB: ~500 s), before every preview and submit."""
    from tests.support.time_limits import cpu_limit

    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\n" * (1024 * 1024 // 28))
    with cpu_limit(1.0), pytest.raises(ValueError, match="no PEM certificate in file"):
        first_certificate_der(bundle)
