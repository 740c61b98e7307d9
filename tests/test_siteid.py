"""Site id: SHA-512 of the CA certificate's DER bytes (+ seed), or the Ruby formula."""

from __future__ import annotations

import hashlib
import subprocess

from dropsonde.siteid import compute_site_id, first_certificate_der, ruby_site_id


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
    site = compute_site_id(bundle, "any", "/any", None, None)
    assert site.source == "ca-certificate" and site.note is None
    assert site.value == openssl_sha512(der.read_bytes())
    seeded = compute_site_id(bundle, "any", "/any", "pepper", None)
    assert seeded.value == openssl_sha512(der.read_bytes() + b"pepper")
    assert seeded.value != site.value


def test_two_sites_differ_and_servers_of_one_site_agree(tmp_path):
    pem_a, _ = make_ca(tmp_path, "a")
    pem_b, _ = make_ca(tmp_path, "b")
    a1 = compute_site_id(pem_a, "compile1.example.test", "/x", None, None)
    a2 = compute_site_id(pem_a, "compile2.example.test", "/y", None, None)
    b = compute_site_id(pem_b, "compile1.example.test", "/x", None, None)
    assert a1.value == a2.value != b.value


def test_ruby_formula_known_vector_when_no_ca_certificate(tmp_path):
    certname, cacert = "puppet.example.test", "/etc/puppetlabs/puppet/ssl/ca/ca_crt.pem"
    expected = hashlib.sha512(b"puppet.example.test/etc/puppetlabs/puppet/ssl/ca/ca_crt.pempepper").hexdigest()
    assert ruby_site_id(certname, cacert, "pepper") == expected
    assert ruby_site_id(certname, cacert, "pepper") == openssl_sha512((certname + cacert + "pepper").encode())
    site = compute_site_id(tmp_path / "missing.pem", certname, cacert, "pepper", None)
    assert site.value == expected and site.source == "certname-fallback"
    assert "certname" in site.note and str(tmp_path) not in site.note
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n")
    assert compute_site_id(garbage, certname, cacert, "", None).source == "certname-fallback"


def test_override_wins(tmp_path):
    pem, _ = make_ca(tmp_path)
    assert compute_site_id(pem, "a", "b", "seed", "my-site").value == "my-site"
