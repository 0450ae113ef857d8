"""A throwaway self-signed certificate for ``listen --tls`` without one, as ``ncat --ssl -l`` makes.

Why generated, and why shown by its fingerprint: a quick TLS listener should not
need openssl commands first, but a certificate nobody issued proves nothing by
itself; the client checks the fingerprint printed here (or chooses not to
verify, ``--insecure``). An ECDSA P-256 key, for localhost, 127.0.0.1 and ::1,
valid for a day, made with the ``cryptography`` package (the standard library
cannot make certificates); nothing is kept on disk once it is loaded.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
import tempfile

from ..tls import server_context

__all__ = ["throwaway_context"]


def throwaway_context() -> tuple[ssl.SSLContext, str]:
    """(a server context presenting a new self-signed certificate, its SHA-256 fingerprint
    as ``AB:CD:...``).

    Raises:
        ImportError: the ``cryptography`` package is missing (it comes with socketkit[cli]).
    """
    try:
        from cryptography import x509  # noqa: PLC0415 - only when a throwaway is asked for
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import NameOID  # noqa: PLC0415
    except ImportError:
        raise ImportError(
            "a throwaway certificate needs the cryptography package: pip install 'socketkit[cli]' "
            "(or give --tls-cert FILE)"
        ) from None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "socketkit throwaway")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with tempfile.TemporaryDirectory(prefix="socketkit-") as directory:  # (load_cert_chain reads a file)
        path = os.path.join(directory, "throwaway.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(pem)
        context = server_context(path)
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return context, ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
