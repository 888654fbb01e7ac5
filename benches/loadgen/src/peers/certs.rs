//! The certificates of the TLS systems (rcgen, ECDSA P-256): one CA, a
//! server certificate for 127.0.0.1 and localhost, one client certificate
//! per user (its name as the common name, which mosquitto takes as the user
//! name, and as a DNS name, which the rustls relay checks against the hello).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ClientConfig;

/// The PEM files the servers read.
pub struct Files {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Pki {
    pub files: Files,
    /// Each user's client configuration (its certificate, the CA as the only root).
    pub clients: HashMap<String, Arc<ClientConfig>>,
}

fn params(names: &[&str], common_name: &str) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    Ok(p)
}

/// Generates the CA, the server's certificate and one client certificate per
/// user; writes the server's PEM files into `dir`.
pub fn generate(dir: &Path, users: &[String]) -> Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca = params(&[], "secureCom benchmark CA")?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut sp = params(&["localhost", "127.0.0.1"], "localhost")?;
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = sp.signed_by(&server_key, &ca, &ca_key)?;

    let files = Files {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.ca, ca.pem())?;
    std::fs::write(&files.cert, server.pem())?;
    std::fs::write(&files.key, server_key.serialize_pem())?;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    let roots = Arc::new(roots);
    let mut clients = HashMap::new();
    for name in users {
        let key = KeyPair::generate()?;
        let mut cp = params(&[name.as_str()], name)?;
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = cp.signed_by(&key, &ca, &ca_key)?;
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ClientConfig::builder_with_provider(super::tls_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain, key)
            .with_context(|| format!("client certificate of {name}"))?;
        // Every login is a full handshake (as secureCom's, which has no resumption).
        config.resumption = rustls::client::Resumption::disabled();
        clients.insert(name.clone(), Arc::new(config));
    }
    Ok(Pki { files, clients })
}
