"""Ward's PKI: CAs, certificates, CSRs, CRLs and their files, on ``cryptography`` alone.

The public API is re-exported here; the modules behind it each own one thing (keys, SANs,
profiles, the CA, chains, CRLs, reports, files, the PKI directory, the server's own credentials).
"""

from pki.authority import (
    CLOCK_SKEW,
    DEFAULT_CA_DAYS,
    DEFAULT_INTERMEDIATE_DAYS,
    DEFAULT_LEAF_DAYS,
    CertificateAuthority,
    verify_csr,
)
from pki.bootstrap import (
    PeerCredentials,
    ServerCredentials,
    ensure_peer_credentials,
    ensure_server_credentials,
)
from pki.chain import verify_chain
from pki.crl import DEFAULT_CRL_DAYS, Revocation, build_crl, check_crl, check_not_revoked
from pki.errors import (
    BadCSRSignature,
    CAExpired,
    CANotFound,
    CertificateNotFound,
    CertificateRevoked,
    ChainError,
    CRLError,
    FileExists,
    InsecurePermissions,
    InvalidCertificate,
    InvalidCSR,
    InvalidInput,
    InvalidSAN,
    KeyMismatch,
    KeyTypeMismatch,
    NotACA,
    PKIError,
    StorageError,
    UnsupportedKey,
)
from pki.keys import KeyType, generate_key
from pki.profiles import Profile
from pki.report import CertificateReport, ChainCheck, PKIReport, describe_certificate
from pki.results import CAResult, CRLResult, IssueResult, Outcome, RevokeResult
from pki.san import SubjectAltNames
from pki.serials import format_serial, parse_serial
from pki.store import PKIStore, inspect_path

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_CA_DAYS",
    "DEFAULT_CRL_DAYS",
    "DEFAULT_INTERMEDIATE_DAYS",
    "DEFAULT_LEAF_DAYS",
    "BadCSRSignature",
    "CAExpired",
    "CANotFound",
    "CAResult",
    "CRLError",
    "CRLResult",
    "CertificateAuthority",
    "CertificateNotFound",
    "CertificateReport",
    "CertificateRevoked",
    "ChainCheck",
    "ChainError",
    "FileExists",
    "InsecurePermissions",
    "InvalidCSR",
    "InvalidCertificate",
    "InvalidInput",
    "InvalidSAN",
    "IssueResult",
    "KeyMismatch",
    "KeyType",
    "KeyTypeMismatch",
    "NotACA",
    "Outcome",
    "PKIError",
    "PKIReport",
    "PKIStore",
    "PeerCredentials",
    "Profile",
    "Revocation",
    "RevokeResult",
    "ServerCredentials",
    "StorageError",
    "SubjectAltNames",
    "UnsupportedKey",
    "build_crl",
    "check_crl",
    "check_not_revoked",
    "describe_certificate",
    "ensure_peer_credentials",
    "ensure_server_credentials",
    "format_serial",
    "generate_key",
    "inspect_path",
    "parse_serial",
    "verify_chain",
    "verify_csr",
]
